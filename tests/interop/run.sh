#!/usr/bin/env bash
# Interop test: tokctl against independent JOSE implementations.
#
#   bash tests/interop/run.sh /path/to/tokctl
#
# For every JWS algorithm (HS256..512, RS256..512, PS256..512, ES256..512,
# EdDSA with Ed25519 and Ed448):
#   tokctl -> peers   tokctl generates the key and signs a JWT (iss, sub, aud,
#                     exp, iat, jti); PyJWT verifies it with tokctl's public PEM,
#                     jwcrypto and latchset `jose` with tokctl's public JWK, and
#                     all of them validate the claims (jose only checks the
#                     signature, so peer.py checks the payload it returns).
#                     tokctl also signs with its key as PEM (+ --alg) and with
#                     --secret-file (HS*), verified by PyJWT.
#   peers -> tokctl   PyJWT, jwcrypto and jose sign with their own keys; tokctl
#                     verifies with their public JWK, public PEM, private PEM,
#                     raw secret (file / env) and a JWK Set, checking claims.
#   negative controls a token tampered in one signature character is rejected
#                     by every verifier (exit 1 for tokctl), a wrong audience is
#                     rejected, and tokctl rejects a peer token under another key.
#
# Peers: Debian python3-jwt (PyJWT), python3-jwcrypto (run with /usr/bin/python3,
# which has them, whatever `python3` is first on PATH) and the latchset `jose`
# CLI (no EdDSA in Debian 12's build: those combinations are skipped, with the
# reason). No network. TOKCTL_INTEROP_KEEP=1 keeps the work directory.
#
# Output: one line per check ("ok", "FAIL", "skip"), then
#   interop: N passed, M failed[, K skipped]
# Exit status 1 when anything failed.

set -u
set -o pipefail

TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
JOSE=${JOSE:-jose}
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

ISS=https://issuer.interop.test
SUB=interop-user-42
AUD=tokctl-interop
OTHER_AUD=some-other-service
ALG_IDS=(HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512
         ES256 ES384 ES512 EdDSA-Ed25519 EdDSA-Ed448)

summary() { interop_summary interop; }

# --- prerequisites ---------------------------------------------------------
need_tokctl tests/interop/run.sh
if ! "$PY" -I -c 'import jwt, jwcrypto.jwt' 2>/dev/null; then
  fail "$PY cannot import jwt and jwcrypto (install python3-jwt python3-jwcrypto: scripts/install-deps)"
  prereq_ok=0
fi
if ! command -v "$JOSE" >/dev/null 2>&1; then
  fail "latchset jose CLI not found (install jose: scripts/install-deps)"; prereq_ok=0
fi
((prereq_ok)) || { summary; exit 1; }

enter_work_dir tokctl-interop
umask 077

# Everything below uses file names relative to $work.
jose_() { timeout 30 "$JOSE" "$@"; }
peer() { "$PY" -I "$HERE/peer.py" "$@"; }

alg_of()  { [[ $1 == EdDSA-* ]] && echo EdDSA || echo "$1"; }
crv_of()  { [[ $1 == EdDSA-* ]] && echo "${1#EdDSA-}"; }
is_hs()   { [[ $1 == HS* ]]; }

# step LABEL -- CMD...: run a setup step; silent when it works, FAIL otherwise.
step() {
  local label=$1; shift 2
  local rc=0
  "$@" 2>step.err </dev/null || rc=$?
  if ((rc != 0)); then
    fail "$label: exit $rc: $(oneline step.err)"
    return 1
  fi
}

# to FILE CMD...: run CMD with stdout to FILE.
to() { local f=$1; shift; "$@" >"$f"; }

# token_to FILE CMD...: run CMD, which must print exactly one compact JWS
# (one line); store it in FILE without the newline.
token_to() {
  local f=$1 t; shift
  t=$("$@") || return
  if [[ ! $t =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; then
    echo "stdout is not one compact JWS: ${t:0:200}" >&2
    return 1
  fi
  printf '%s' "$t" >"$f"
}

# tokctl_verify WANT[:WHY] LABEL TOKENFILE|-TOKENFILE ARGS...
# Runs `tokctl -o json verify TOKEN ARGS...` and wants exit WANT (0 or 1).
# WANT 0: stdout must be the JSON success object with the claims.
# WANT 1: stdout must say "valid": false and, given WHY, list an error whose
# code mentions WHY (signature, aud): the token must fail for that reason,
# not for some other one. A token file given as -FILE is fed on stdin.
tokctl_verify() {
  local want=${1%%:*} why=${1#*:} label=$2 tokfile=$3 rc shown
  [[ $why == "$1" ]] && why=
  shift 3
  if [[ $tokfile == -* ]]; then
    tokfile=${tokfile#-}
    shown="tokctl -o json verify - $* <$tokfile"
    if [[ ! -s $tokfile ]]; then fail "$label: no token ($tokfile missing)"; return; fi
    tk -o json verify - "$@" <"$tokfile" >v.out 2>v.err
  else
    shown="tokctl -o json verify \$(cat $tokfile) $*"
    if [[ ! -s $tokfile ]]; then fail "$label: no token ($tokfile missing)"; return; fi
    tk -o json verify "$(<"$tokfile")" "$@" >v.out 2>v.err </dev/null
  fi
  rc=$?
  if ((rc != want)); then
    fail "$label: exit $rc, expected $want [$shown] stderr: $(oneline v.err) stdout: $(oneline v.out 200)"
  elif ((want == 0)) && ! grep -Eq '"valid"[[:space:]]*:[[:space:]]*true' v.out; then
    fail "$label: exit 0 but stdout lacks \"valid\":true [$shown] stdout: $(oneline v.out)"
  elif ((want == 0)) && ! grep -Fq "\"$SUB\"" v.out; then
    fail "$label: exit 0 but stdout lacks the sub claim [$shown] stdout: $(oneline v.out)"
  elif ((want == 1)) && ! grep -Eq '"valid"[[:space:]]*:[[:space:]]*false' v.out; then
    fail "$label: exit 1 but stdout lacks \"valid\":false [$shown] stdout: $(oneline v.out)"
  elif ((want == 1)) && [[ -n $why ]] &&
       ! grep -Eq "\"code\"[[:space:]]*:[[:space:]]*\"[a-z_]*${why}[a-z_]*\"" v.out; then
    fail "$label: rejected, but no error code mentions '$why' [$shown] stdout: $(oneline v.out)"
  else
    pass "$label"
  fi
}

# job LIB ALG KEY TOKEN EXPECT AUD LABEL: queue a check for peer.py verify.
job() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>jobs.tsv; }

jose_has_alg() { grep -qx "$1" jose-algs.txt; }
jose_ alg >jose-algs.txt 2>/dev/null || true

start=$SECONDS
: >jobs.tsv

# --- 1. peer keys and peer-signed tokens (PyJWT, jwcrypto) -------------------
while IFS= read -r line; do
  case $line in
    FAIL\ *) fail "${line#FAIL }" ;;
    "exit 0") ;;
    exit\ *) fail "peer.py prepare $line: $(oneline prepare.err 600)" ;;
    *) [[ -n $line ]] && echo "$line" ;;
  esac
done < <(peer prepare . "$ISS" "$SUB" "$AUD" 2>prepare.err; echo "exit $?")
if [[ ! -s claims.json ]]; then
  fail "peer.py prepare wrote no claims: $(oneline prepare.err)"
fi

# --- 2. tokctl keys and tokctl-signed tokens; latchset jose keys and tokens --
for id in "${ALG_IDS[@]}"; do
  alg=$(alg_of "$id")
  gen=(keys generate --alg "$alg" --kid "tk-$id")
  [[ -n $(crv_of "$id") ]] && gen+=(--crv "$(crv_of "$id")")
  claims=(--typ JWT --iss "$ISS" --sub "$SUB" --aud "$AUD" --aud "$OTHER_AUD"
          --exp +15m --jti auto)

  step "tokctl ${gen[*]}" -- tk "${gen[@]}" --out "tk-$id.jwk" || continue
  if ! is_hs "$id"; then
    step "tokctl keys convert tk-$id.jwk --to jwk --public" -- \
      to "tk-$id.pub.jwk" tk keys convert "tk-$id.jwk" --to jwk --public
    step "tokctl keys convert tk-$id.jwk --to pem --public" -- \
      to "tk-$id.pub.pem" tk keys convert "tk-$id.jwk" --to pem --public
    step "tokctl keys convert tk-$id.jwk --to pem" -- \
      to "tk-$id.pem" tk keys convert "tk-$id.jwk" --to pem
  fi
  step "tokctl sign --key tk-$id.jwk ${claims[*]}" -- \
    token_to "tok-tokctl-$id" tk sign --key "tk-$id.jwk" "${claims[@]}"
  # shellcheck disable=SC2015
  [[ -s tok-tokctl-$id ]] && tamper_jws "tok-tokctl-$id" "bad-tokctl-$id" || true
  if is_hs "$id" && [[ -s peer-$id.secret ]]; then
    step "tokctl sign --secret-file peer-$id.secret --alg $alg ${claims[*]}" -- \
      token_to "tok-tokctl-secret-$id" tk sign --secret-file "peer-$id.secret" --alg "$alg" "${claims[@]}"
  fi
  if ! is_hs "$id" && [[ -s tk-$id.pem ]]; then
    step "tokctl sign --key tk-$id.pem --alg $alg ${claims[*]}" -- \
      token_to "tok-tokctl-pem-$id" tk sign --key "tk-$id.pem" --alg "$alg" "${claims[@]}"
  fi

  for lib in pyjwt jwcrypto; do
    [[ -s tok-$lib-$id ]] && tamper_jws "tok-$lib-$id" "bad-$lib-$id"
  done

  # latchset jose: its own key and token over the shared claims.json.
  if [[ $alg == EdDSA ]] && ! jose_has_alg EdDSA; then
    continue
  fi
  step "jose jwk gen -i {\"alg\":\"$alg\"}" -- jose_ jwk gen -i "{\"alg\":\"$alg\"}" -o "jose-$id.jwk" &&
  if is_hs "$id"; then
    cp "jose-$id.jwk" "jose-$id.pub.jwk"
  else
    step "jose jwk pub -i jose-$id.jwk" -- jose_ jwk pub -i "jose-$id.jwk" -o "jose-$id.pub.jwk"
  fi &&
  step "jose jws sig -I claims.json -k jose-$id.jwk -c" -- \
    jose_ jws sig -I claims.json -k "jose-$id.jwk" -c -o "tok-jose-$id" \
      -s "{\"protected\":{\"typ\":\"JWT\",\"kid\":\"jose-$id\"}}" &&
  tamper_jws "tok-jose-$id" "bad-jose-$id"
done

# --- 3. tokctl-signed tokens, verified by tokctl itself and by the peers ----
for id in "${ALG_IDS[@]}"; do
  alg=$(alg_of "$id")
  if is_hs "$id"; then pem=tk-$id.jwk; pub=tk-$id.jwk; else pem=tk-$id.pub.pem; pub=tk-$id.pub.jwk; fi
  [[ -f tk-$id.jwk ]] || { fail "$id: no tokctl key, tokctl -> peer checks not run"; continue; }

  tokctl_verify 0 "tokctl verifies its own $id token (sanity)" "tok-tokctl-$id" \
    --key "$pub" --iss "$ISS" --aud "$AUD" --sub "$SUB"

  keydesc="tokctl public PEM"; is_hs "$id" && keydesc="secret from tokctl JWK"
  job pyjwt "$alg" "$pem" "tok-tokctl-$id" valid "$AUD" \
    "PyJWT verifies tokctl $id token + claims ($keydesc)"
  if is_hs "$id"; then
    job pyjwt "$alg" "peer-$id.secret" "tok-tokctl-secret-$id" valid "$AUD" \
      "PyJWT verifies tokctl $id token signed with --secret-file (same raw secret)"
  else
    job pyjwt "$alg" "$pem" "tok-tokctl-pem-$id" valid "$AUD" \
      "PyJWT verifies tokctl $id token signed with a PEM key ($keydesc)"
  fi
  job jwcrypto "$alg" "$pub" "tok-tokctl-$id" valid "$AUD" \
    "jwcrypto verifies tokctl $id token + claims (tokctl $(is_hs "$id" && echo oct || echo public) JWK)"
  job pyjwt "$alg" "$pem" "bad-tokctl-$id" bad-signature "$AUD" \
    "PyJWT rejects tampered tokctl $id token"
  job jwcrypto "$alg" "$pub" "bad-tokctl-$id" bad-signature "$AUD" \
    "jwcrypto rejects tampered tokctl $id token"
  job pyjwt "$alg" "$pem" "tok-tokctl-$id" bad-audience "wrong-audience" \
    "PyJWT rejects tokctl $id token for another audience"
  job jwcrypto "$alg" "$pub" "tok-tokctl-$id" bad-audience "wrong-audience" \
    "jwcrypto rejects tokctl $id token for another audience"

  if [[ $alg == EdDSA ]] && ! jose_has_alg EdDSA; then
    skip "jose verifies tokctl $id token" "Debian's jose has no EdDSA"
  elif [[ -s tok-tokctl-$id ]]; then
    if jose_ jws ver -i "$(<"tok-tokctl-$id")" -k "$pub" -O "jose-payload-$id" 2>v.err; then
      pass "jose verifies tokctl $id signature (tokctl $(is_hs "$id" && echo oct || echo public) JWK)"
      job claims "$alg" - "jose-payload-$id" valid "$AUD" \
        "payload jose extracted from tokctl $id token has the expected claims"
    else
      fail "jose verifies tokctl $id signature: exit $? [jose jws ver -i \"\$(cat tok-tokctl-$id)\" -k $pub] $(oneline v.err)"
    fi
    if jose_ jws ver -i "$(<"bad-tokctl-$id")" -k "$pub" -O /dev/null 2>/dev/null; then
      fail "jose ACCEPTED tampered tokctl $id token"
    else
      pass "jose rejects tampered tokctl $id token"
    fi
  else
    fail "jose verifies tokctl $id token: no tokctl token"
  fi
done

njobs=$(wc -l <jobs.tsv)
nres=0
while IFS= read -r line; do
  case $line in
    ok\ *)   pass "${line#ok   }"; nres=$((nres + 1)) ;;
    FAIL\ *) fail "${line#FAIL }"; nres=$((nres + 1)) ;;
    *)       echo "$line" ;;
  esac
done < <(peer verify jobs.tsv "$ISS" "$SUB" 2>verify.err)
if ((nres != njobs)); then
  fail "peer.py verify answered $nres of $njobs checks: $(oneline verify.err 600)"
fi

# --- 4. peer-signed tokens, verified by tokctl -------------------------------
claimargs=(--iss "$ISS" --aud "$AUD" --sub "$SUB")
for id in "${ALG_IDS[@]}"; do
  alg=$(alg_of "$id")
  if is_hs "$id"; then
    pyjwt_key=(--secret-file "peer-$id.secret" --alg "$alg")
    jwc_key=(--key "peer-$id.jwk")
    tk_pub=tk-$id.jwk
    tokctl_verify 0 "tokctl verifies PyJWT $id token + claims (--secret-file)" \
      "tok-pyjwt-$id" "${pyjwt_key[@]}" "${claimargs[@]}"
    export TOKCTL_INTEROP_SECRET
    TOKCTL_INTEROP_SECRET=$(<"peer-$id.secret")
    tokctl_verify 0 "tokctl verifies PyJWT $id token via stdin (--secret-env)" \
      "-tok-pyjwt-$id" --secret-env TOKCTL_INTEROP_SECRET --alg "$alg" "${claimargs[@]}"
    unset TOKCTL_INTEROP_SECRET
    tokctl_verify 0 "tokctl verifies jwcrypto $id token + claims (jwcrypto oct JWK)" \
      "tok-jwcrypto-$id" "${jwc_key[@]}" "${claimargs[@]}"
  else
    pyjwt_key=(--key "peer-$id.pub.pem" --alg "$alg")
    jwc_key=(--key "peer-$id.pub.jwk")
    tk_pub=tk-$id.pub.jwk
    tokctl_verify 0 "tokctl verifies PyJWT $id token + claims (PyJWT public PEM, --alg)" \
      "tok-pyjwt-$id" "${pyjwt_key[@]}" "${claimargs[@]}"
    tokctl_verify 0 "tokctl verifies PyJWT $id token (private PKCS#8 PEM, --alg)" \
      "tok-pyjwt-$id" --key "peer-$id.pem" --alg "$alg" "${claimargs[@]}"
    tokctl_verify 0 "tokctl verifies jwcrypto $id token + claims (jwcrypto public JWK)" \
      "tok-jwcrypto-$id" "${jwc_key[@]}" "${claimargs[@]}"
    tokctl_verify 0 "tokctl verifies jwcrypto $id token via stdin (jwcrypto JWK Set, by kid)" \
      "-tok-jwcrypto-$id" --jwks peer-jwks.json --alg "$alg" "${claimargs[@]}"
  fi
  tokctl_verify 1:signature "tokctl rejects tampered PyJWT $id token" \
    "bad-pyjwt-$id" "${pyjwt_key[@]}" "${claimargs[@]}"
  tokctl_verify 1:signature "tokctl rejects tampered jwcrypto $id token" \
    "bad-jwcrypto-$id" "${jwc_key[@]}" "${claimargs[@]}"
  tokctl_verify 1:aud "tokctl rejects jwcrypto $id token for another audience" \
    "tok-jwcrypto-$id" "${jwc_key[@]}" --iss "$ISS" --aud wrong-audience
  tokctl_verify 1:signature "tokctl rejects PyJWT $id token under another $id key (tokctl's)" \
    "tok-pyjwt-$id" --key "$tk_pub" "${claimargs[@]}"

  if [[ $alg == EdDSA ]] && ! jose_has_alg EdDSA; then
    skip "jose signs $id for tokctl" "Debian's jose has no EdDSA"
    continue
  fi
  tokctl_verify 0 "tokctl verifies jose $id token + claims (jose $(is_hs "$id" && echo oct || echo public) JWK with key_ops)" \
    "tok-jose-$id" --key "jose-$id.pub.jwk" "${claimargs[@]}"
  tokctl_verify 1:signature "tokctl rejects tampered jose $id token" \
    "bad-jose-$id" --key "jose-$id.pub.jwk" "${claimargs[@]}"
done

echo "(took $((SECONDS - start))s)"
summary
