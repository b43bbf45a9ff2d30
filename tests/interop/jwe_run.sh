#!/usr/bin/env bash
# JWE interop test: tokctl encrypt/decrypt against independent JOSE implementations.
#
#   bash tests/interop/jwe_run.sh /path/to/tokctl
#
# For every key-management alg (RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A256KW
# on P-256/384/521 and X25519/X448, A128KW, A256KW, dir, PBES2-HS256+A128KW, PBES2-HS512+A256KW)
# and every content encryption (A128GCM, A256GCM, A128CBC-HS256, A256CBC-HS512):
#   tokctl -> jwcrypto   tokctl generates the key (keys generate), encrypts a binary plaintext to
#                        the public JWK; jwcrypto decrypts with tokctl's private JWK and compares
#                        the bytes and the header's alg/enc.
#   jwcrypto -> tokctl   jwcrypto generates its own key and encrypts; tokctl decrypts with
#                        jwcrypto's private JWK (`decrypt --key`) and the bytes must match.
#   PBES2                both sides share a passphrase (tokctl --passphrase-file, jwcrypto and jose
#                        an oct JWK holding it); dir and A*KW use shared oct JWKs.
#   latchset jose        the same both ways for the algs `jose alg` lists (no RSA-OAEP) and key
#                        types it can generate (no X25519/X448): skipped with the reason. Debian's
#                        jose refuses PBES2 p2c above 32768 (CVE-2023-50967 fix), so tokctl encrypts
#                        with --p2c 32768 for it; jose wants dir keys without "alg" (or alg = enc),
#                        and reads compact tokens to EOF, so it gets them without the newline.
#   nested JWT           tokctl sign (ES256) | tokctl encrypt --cty JWT; jwcrypto decrypts, checks
#                        cty, verifies the inner JWS with tokctl's public key and checks claims.
#   negative controls    tampered tokens are refused by tokctl (exit 1) and jwcrypto, a token for
#                        another key is refused by tokctl (exit 1).
#
# Peers: /usr/bin/python3 with Debian python3-jwcrypto (whatever python3 is first on PATH), and the
# latchset `jose` CLI. No network. TOKCTL_INTEROP_KEEP=1 keeps the work directory.
#
# Output: one line per check ("ok", "FAIL", "skip"), then
#   jwe-interop: N passed, M failed[, K skipped]
# Exit status 1 when anything failed.

set -u
set -o pipefail

TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
JOSE=${JOSE:-jose}
PEER=$HERE/jwe_peer.py
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

ENCS=(A128GCM A256GCM A128CBC-HS256 A256CBC-HS512)
# NAME|ALG|tokctl keys generate args|jwcrypto key|jose key (jwk gen template, "password", or -REASON)
CASES=(
  "RSA-OAEP|RSA-OAEP|--alg RSA-OAEP|RSA:2048|-"
  "RSA-OAEP-256|RSA-OAEP-256|--alg RSA-OAEP-256|RSA:2048|-"
  "ECDH-ES.P-256|ECDH-ES|--alg ECDH-ES --crv P-256|EC:P-256|{\"kty\":\"EC\",\"crv\":\"P-256\"}"
  "ECDH-ES+A128KW.P-384|ECDH-ES+A128KW|--alg ECDH-ES+A128KW --crv P-384|EC:P-384|{\"kty\":\"EC\",\"crv\":\"P-384\"}"
  "ECDH-ES+A256KW.P-521|ECDH-ES+A256KW|--alg ECDH-ES+A256KW --crv P-521|EC:P-521|{\"kty\":\"EC\",\"crv\":\"P-521\"}"
  "ECDH-ES.X25519|ECDH-ES|--alg ECDH-ES --crv X25519|OKP:X25519|-no X25519/X448 (OKP) keys in latchset jose"
  "ECDH-ES+A128KW.X448|ECDH-ES+A128KW|--alg ECDH-ES+A128KW --crv X448|OKP:X448|-no X25519/X448 (OKP) keys in latchset jose"
  "ECDH-ES+A256KW.X25519|ECDH-ES+A256KW|--alg ECDH-ES+A256KW --crv X25519|OKP:X25519|-no X25519/X448 (OKP) keys in latchset jose"
  "A128KW|A128KW|--alg A128KW|oct:128|{\"kty\":\"oct\",\"bytes\":16}"
  "A256KW|A256KW|--alg A256KW|oct:256|{\"kty\":\"oct\",\"bytes\":32}"
  "dir|dir|--alg dir|oct|{\"kty\":\"oct\"}"
  "PBES2-HS256+A128KW|PBES2-HS256+A128KW|password|password|password"
  "PBES2-HS512+A256KW|PBES2-HS512+A256KW|password|password|password"
)

summary() { interop_summary jwe-interop by-reason; }

# --- prerequisites ---------------------------------------------------------
need_tokctl tests/interop/jwe_run.sh
if ! "$PY" -I -c 'import jwcrypto.jwe' 2>/dev/null; then
  fail "$PY cannot import jwcrypto (install python3-jwcrypto: scripts/install-deps)"; prereq_ok=0
fi
have_jose=1
if ! command -v "$JOSE" >/dev/null 2>&1; then
  fail "latchset jose CLI not found (install jose: scripts/install-deps)"; have_jose=0
fi
if ((!prereq_ok)); then
  summary
  exit 1
fi
jose_algs=" $("$JOSE" alg 2>/dev/null | tr '\n' ' ') "

enter_work_dir tokctl-jwe-interop
WORK=$work
# No keystore, no policy and no passphrase from the environment.
export TOKCTL_KEYSTORE=$WORK/no-keystore
unset TOKCTL_PASSPHRASE TOKCTL_CONFIG
export NO_COLOR=1

# A plaintext that is not text: NUL, 0xff, a multi-byte UTF-8 character and a trailing newline,
# so byte-exactness (no added or lost newline, no re-encoding) is checked too.
printf 'jwe interop \xe2\x9c\x93 \x00\xff\x01 payload\n' > plain.bin
printf 'correct horse battery staple' > password

T() { "$TOKCTL" "$@"; }

dir_bits() {
  case $1 in
    A128GCM) echo 128 ;;
    A256GCM | A128CBC-HS256) echo 256 ;;
    A256CBC-HS512) echo 512 ;;
  esac
}

# key name for a case and enc: dir keys are the content key itself, one per size
keyname() {
  if [[ $1 == dir ]]; then echo "dir-$(dir_bits "$2")"; else echo "$1"; fi
}

# --- tokctl keys, tokens; jwcrypto's keys and tokens ------------------------
: > peer-enc.jobs
: > peer-dec.jobs
declare -A made
for c in "${CASES[@]}"; do
  IFS='|' read -r name alg gen pyspec _ <<< "$c"
  for enc in "${ENCS[@]}"; do
    kn=$(keyname "$name" "$enc")
    spec=$pyspec
    [[ $name == dir ]] && spec="oct:$(dir_bits "$enc")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$kn" "$spec" "$alg" "$enc" "pt-$name-$enc" >> peer-enc.jobs
    label="tokctl -> jwcrypto $alg $enc ($kn)"
    if [[ $gen == password ]]; then
      if T --passphrase-file password encrypt plain.bin --alg "$alg" --enc "$enc" > "tt-$name-$enc" 2> err; then
        printf 'password\t%s\t%s\t%s\t%s\n' "$alg" "$enc" "tt-$name-$enc" "$label" >> peer-dec.jobs
      else
        fail "$label: tokctl encrypt failed: $(head -c 300 err)"
      fi
      continue
    fi
    if [[ -z ${made[$kn]:-} ]]; then
      made[$kn]=1
      args=($gen)
      [[ $name == dir ]] && args+=(--bits "$(dir_bits "$enc")")
      if ! T keys generate "${args[@]}" --kid "tokctl-$kn" --out "tk-$kn.jwk" 2> err; then
        fail "tokctl keys generate ${args[*]}: $(head -c 300 err)"
        continue
      fi
      if [[ $pyspec == oct* ]]; then
        cp "tk-$kn.jwk" "tk-$kn.pub.jwk"
      elif ! T keys convert "tk-$kn.jwk" --to jwk --public > "tk-$kn.pub.jwk" 2> err; then
        fail "tokctl keys convert --public $kn: $(head -c 300 err)"
      fi
    fi
    [[ -s tk-$kn.pub.jwk ]] || continue
    if T encrypt plain.bin --key "tk-$kn.pub.jwk" --alg "$alg" --enc "$enc" > "tt-$name-$enc" 2> err; then
      printf '%s\t%s\t%s\t%s\t%s\n' "tk-$kn.jwk" "$alg" "$enc" "tt-$name-$enc" "$label" >> peer-dec.jobs
    else
      fail "$label: tokctl encrypt failed: $(head -c 300 err)"
    fi
  done
done

# jwcrypto decrypts tokctl's tokens
while IFS= read -r line; do
  case $line in
    "ok   "*) pass "${line#ok   }" ;;
    *) fail "${line#FAIL }" ;;
  esac
done < <("$PY" -I "$PEER" decrypt "$WORK" peer-dec.jobs 2> peer-dec.err)
[[ -s peer-dec.err ]] && sed 's/^/    peer: /' peer-dec.err

# jwcrypto encrypts, tokctl decrypts
"$PY" -I "$PEER" encrypt "$WORK" peer-enc.jobs > peer-enc.out 2> peer-enc.err
while IFS= read -r line; do fail "${line#FAIL }"; done < peer-enc.out
for c in "${CASES[@]}"; do
  IFS='|' read -r name alg gen _ _ <<< "$c"
  for enc in "${ENCS[@]}"; do
    kn=$(keyname "$name" "$enc")
    label="jwcrypto -> tokctl $alg $enc ($kn)"
    [[ -s pt-$name-$enc ]] || continue  # reported by the peer
    if [[ $gen == password ]]; then
      T --passphrase-file password decrypt - < "pt-$name-$enc" > out 2> err
    else
      T decrypt - --key "peer-$kn.jwk" < "pt-$name-$enc" > out 2> err
    fi
    rc=$?
    if ((rc != 0)); then
      fail "$label: tokctl decrypt exit $rc: $(head -c 300 err)"
    elif ! cmp -s out plain.bin; then
      fail "$label: plaintext differs"
    else
      pass "$label"
    fi
  done
done

# --- latchset jose ----------------------------------------------------------
declare -A jmade
for c in "${CASES[@]}"; do
  IFS='|' read -r name alg gen _ jspec <<< "$c"
  for enc in "${ENCS[@]}"; do
    kn=$(keyname "$name" "$enc")
    to="tokctl -> jose $alg $enc ($kn)"
    from="jose -> tokctl $alg $enc ($kn)"
    if ((!have_jose)); then
      skip "$to" "latchset jose not installed"; skip "$from" "latchset jose not installed"; continue
    fi
    if [[ $jose_algs != *" $alg "* ]]; then
      skip "$to" "jose alg does not list $alg"; skip "$from" "jose alg does not list $alg"; continue
    fi
    if [[ $jspec == -* ]]; then
      skip "$to" "${jspec#-}"; skip "$from" "${jspec#-}"; continue
    fi
    # tokctl's token, jose decrypts with tokctl's private JWK (or the password as an oct JWK)
    # jose reads the last compact field up to EOF: give it the token without tokctl's newline.
    printf '%s' "$(cat "tt-$name-$enc" 2> /dev/null)" > "jose-in-$name-$enc"
    if [[ $jspec == password ]]; then
      if [[ ! -f pw.jwk ]]; then
        "$PY" -I -c 'import base64,json,sys; print(json.dumps({"kty":"oct","k":base64.urlsafe_b64encode(open(sys.argv[1],"rb").read()).rstrip(b"=").decode()}))' password > pw.jwk
      fi
      dkey=pw.jwk
      # Debian's jose (CVE-2023-50967 fix) refuses p2c above 32768; tokctl's defaults are higher.
      to="$to, --p2c 32768"
      T --passphrase-file password encrypt plain.bin --alg "$alg" --enc "$enc" --p2c 32768 2> err |
        tr -d '\n' > "jose-in-$name-$enc"
    elif [[ $name == dir ]]; then
      # jose wants a dir key's "alg" to be the enc (RFC 7520 5.6 style) or absent: drop tokctl's "dir".
      "$PY" -I -c 'import json,sys; k=json.load(open(sys.argv[1])); k.pop("alg"); print(json.dumps(k))' \
        "tk-$kn.jwk" > "tk-$kn.jose.jwk"
      dkey=tk-$kn.jose.jwk
    else
      dkey=tk-$kn.jwk
    fi
    if [[ ! -s jose-in-$name-$enc ]]; then
      fail "$to: no tokctl token"
    elif ! "$JOSE" jwe dec -i "jose-in-$name-$enc" -k "$dkey" -O out 2> err; then
      fail "$to: jose jwe dec failed: $(head -c 300 err)"
    elif ! cmp -s out plain.bin; then
      fail "$to: plaintext differs"
    else
      pass "$to"
    fi
    # jose's own key and token, tokctl decrypts
    if [[ $jspec == password ]]; then
      ekey=pw.jwk
    else
      if [[ -z ${jmade[$kn]:-} ]]; then
        jmade[$kn]=1
        tmpl=$jspec
        [[ $name == dir ]] && tmpl="{\"kty\":\"oct\",\"bytes\":$(($(dir_bits "$enc") / 8))}"
        "$JOSE" jwk gen -i "$tmpl" -o "jk-$kn.jwk" 2> err || fail "$from: jose jwk gen $tmpl: $(head -c 300 err)"
        if [[ $tmpl == *'"oct"'* ]]; then
          cp "jk-$kn.jwk" "jk-$kn.pub.jwk"
        else
          "$JOSE" jwk pub -i "jk-$kn.jwk" -o "jk-$kn.pub.jwk" 2> err || fail "$from: jose jwk pub: $(head -c 300 err)"
        fi
      fi
      ekey=jk-$kn.pub.jwk
    fi
    [[ -s $ekey ]] || continue
    if ! "$JOSE" jwe enc -I plain.bin -k "$ekey" -i "{\"protected\":{\"alg\":\"$alg\",\"enc\":\"$enc\"}}" -c \
      -o "jt-$name-$enc" 2> err; then
      fail "$from: jose jwe enc failed: $(head -c 300 err)"
      continue
    fi
    if [[ $jspec == password ]]; then
      T --passphrase-file password decrypt - < "jt-$name-$enc" > out 2> err
    else
      T decrypt - --key "jk-$kn.jwk" < "jt-$name-$enc" > out 2> err
    fi
    rc=$?
    if ((rc != 0)); then
      fail "$from: tokctl decrypt exit $rc: $(head -c 300 err)"
    elif ! cmp -s out plain.bin; then
      fail "$from: plaintext differs"
    else
      pass "$from"
    fi
  done
done

# --- nested JWT: tokctl sign | tokctl encrypt --cty JWT -> jwcrypto ----------
label="nested JWT: tokctl sign ES256 | tokctl encrypt --cty JWT (ECDH-ES+A256KW P-521) -> jwcrypto decrypts and verifies"
printf '{"iss":"https://issuer.interop.test","sub":"nested-user","aud":"tokctl-interop"}\n' > claims.json
if T keys generate --alg ES256 --out sig.jwk 2> err && T keys convert sig.jwk --to jwk --public > sig.pub.jwk 2>> err &&
  T sign --key sig.jwk --iss https://issuer.interop.test --sub nested-user --aud tokctl-interop --exp +10m 2>> err |
  T encrypt --cty JWT --key tk-ECDH-ES+A256KW.P-521.pub.jwk > nested.jwe 2>> err; then
  line=$("$PY" -I "$PEER" nested "$WORK" tk-ECDH-ES+A256KW.P-521.jwk sig.pub.jwk nested.jwe "$label" 2>&1 | tail -1)
  case $line in
    "ok   "*) pass "${line#ok   }" ;;
    *) fail "${line#FAIL }" ;;
  esac
else
  fail "$label: tokctl failed: $(head -c 300 err)"
fi

# --- negative controls ------------------------------------------------------
# flip one character in the middle of the ciphertext (4th part)
tamper() {
  "$PY" -I -c '
import sys
parts = open(sys.argv[1]).read().strip().split(".")
c = parts[3]
i = len(c) // 2
parts[3] = c[:i] + ("A" if c[i] != "A" else "B") + c[i + 1:]
print(".".join(parts))' "$1"
}
for name in ECDH-ES+A128KW.P-384 RSA-OAEP-256 A256KW; do
  enc=A128CBC-HS256
  kn=$(keyname "$name" "$enc")
  label="tokctl rejects a tampered jwcrypto $name $enc token (exit 1)"
  if [[ -s pt-$name-$enc ]]; then
    tamper "pt-$name-$enc" > tampered
    T decrypt - --key "peer-$kn.jwk" < tampered > out 2> err
    rc=$?
    if ((rc == 1)) && [[ ! -s out ]]; then pass "$label"; else fail "$label: exit $rc, stdout $(wc -c < out) bytes"; fi
  else
    fail "$label: no jwcrypto token"
  fi
  label="jwcrypto rejects a tampered tokctl $name $enc token"
  if [[ -s tt-$name-$enc ]]; then
    tamper "tt-$name-$enc" > "tx-$name"
    printf 'tk-%s.jwk\t%s\t%s\t%s\t%s\n' "$kn" "${name%%.*}" "$enc" "tx-$name" "$label" > neg.jobs
    line=$("$PY" -I "$PEER" decrypt "$WORK" neg.jobs 2>&1 | tail -1)
    if [[ $line == FAIL* ]]; then pass "$label"; else fail "$label: jwcrypto accepted it"; fi
  else
    fail "$label: no tokctl token"
  fi
done
label="tokctl rejects a jwcrypto token under another key (exit 1)"
if [[ -s pt-ECDH-ES.P-256-A256GCM ]]; then
  # same alg and curve, different key: tokctl's own P-256 key
  T decrypt - --key tk-ECDH-ES.P-256.jwk < pt-ECDH-ES.P-256-A256GCM > out 2> err
  rc=$?
  if ((rc == 1)) && [[ ! -s out ]]; then pass "$label"; else fail "$label: exit $rc"; fi
else
  fail "$label: no jwcrypto token"
fi

summary
