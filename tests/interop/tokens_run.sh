#!/usr/bin/env bash
# Token service interop: access tokens issued by `tokctl issue` verify in independent JOSE
# implementations against `tokctl keys jwks`.
#
#   bash tests/interop/tokens_run.sh /path/to/tokctl
#
# For each keystore signing alg (ES256, RS256, EdDSA/Ed25519): a fresh keystore with one active
# key and a policy (issuer, scopes, one client with an audience); `tokctl issue` makes an RFC 9068
# JWT access token (also a phantom JWT of an opaque token, `introspect --jwt`), `tokctl keys jwks`
# exports the public keys, and PyJWT (keys built from the JWKS with jwt.PyJWK) and jwcrypto
# (JWKSet) verify the signature and check typ at+jwt, iss, aud and the required claims.
# Negative controls: a tampered signature, a wrong audience, a wrong issuer, a JWKS without the
# signing key and a wrapped token (typ JWT, no sub/aud) must be refused by both.
#
# Peers: /usr/bin/python3 with python3-jwt (PyJWT) and python3-jwcrypto. No network. Tokens are
# issued at the real time (the peers check exp against it). TOKCTL_INTEROP_KEEP=1 keeps the work
# directory.
#
# Output: one line per check ("ok" or "FAIL"), then
#   tokens-interop: N passed, M failed
# Exit status 1 when anything failed.

set -u
set -o pipefail

TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
PEER=$HERE/tokens_peer.py
ISS=https://tokens.interop.test
AUD=api-a
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

summary() { interop_summary tokens-interop; }

# --- prerequisites ---------------------------------------------------------
prereq_ok=1
if [[ -z $TOKCTL || ! -x $TOKCTL ]]; then
  fail "usage: $0 /path/to/tokctl (got '${TOKCTL}')"; prereq_ok=0
fi
if ! "$PY" -c 'import jwt, jwcrypto' 2>/dev/null; then
  fail "$PY cannot import jwt (PyJWT) and jwcrypto (install python3-jwt python3-jwcrypto)"; prereq_ok=0
fi
((prereq_ok)) || { summary; exit 1; }
[[ $TOKCTL == /* ]] || TOKCTL=$PWD/$TOKCTL

enter_work_dir tokctl-tokens-interop
umask 077
unset TOKCTL_KEYSTORE TOKCTL_CONFIG TOKCTL_PASSPHRASE

cat >policy.yaml <<YAML
issuer: $ISS
tokens:
  access: {format: jwt, ttl: 15m}
  opaque_prefix: tok_
scopes:
  - name: read
  - name: write
clients:
  svc: {scopes: [read, write], audiences: [$AUD, api-b]}
YAML

# peer IMPL WANT LABEL JWKS TOKENFILE [ISS AUD]: WANT ok|refuse.
peer() {
  local impl=$1 want=$2 label=$3 jwks=$4 tok=$5 iss=${6:-$ISS} aud=${7:-$AUD} extra=()
  [[ $want == refuse ]] && extra=(--expect-fail)
  if "$PY" -I "$PEER" "$impl" "$jwks" "$tok" "$iss" "$aud" "${extra[@]}" >peer.out 2>&1; then
    pass "$label ($impl)"
  else
    fail "$label ($impl): $(oneline peer.out)"
  fi
}

is_jws() { [[ $(<"$1") =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; }

for spec in ES256 RS256 EdDSA; do
  ks=ks-$spec
  if ! tk --keystore "$ks" keys add --alg "$spec" >add.out 2>&1; then
    fail "$spec: keys add: $(oneline add.out)"; continue
  fi
  if ! tk --keystore "$ks" keys jwks >"jwks-$spec.json" 2>jwks.err; then
    fail "$spec: keys jwks: $(oneline jwks.err)"; continue
  fi
  t=tok-$spec
  if ! tk --keystore "$ks" --config policy.yaml issue --client-id svc --sub alice --scope "read write" \
      >"$t.raw" 2>issue.err; then
    fail "$spec: issue: $(oneline issue.err)"; continue
  fi
  tr -d '\n' <"$t.raw" >"$t"
  if ! is_jws "$t"; then fail "$spec: issue did not print one compact JWS: $(oneline "$t")"; continue; fi
  tamper_jws "$t" "$t.tampered"

  # A second signing key in another keystore: its JWKS lacks the token's kid.
  tk --keystore "other-$spec" keys add --alg "$spec" >/dev/null 2>&1
  tk --keystore "other-$spec" keys jwks >"jwks-other-$spec.json" 2>/dev/null

  for impl in pyjwt jwcrypto; do
    peer "$impl" ok "$spec access token verifies" "jwks-$spec.json" "$t"
    peer "$impl" refuse "$spec tampered signature refused" "jwks-$spec.json" "$t.tampered"
    peer "$impl" refuse "$spec wrong audience refused" "jwks-$spec.json" "$t" "$ISS" api-z
    peer "$impl" refuse "$spec wrong issuer refused" "jwks-$spec.json" "$t" https://evil.test "$AUD"
    peer "$impl" refuse "$spec JWKS without the signing key refused" "jwks-other-$spec.json" "$t"
  done

  # --aud picks another allowed audience.
  if tk --keystore "$ks" --config policy.yaml issue --client-id svc --sub alice --scope read --aud api-b \
      2>issue.err | tr -d '\n' >"$t.b" && is_jws "$t.b"; then
    for impl in pyjwt jwcrypto; do
      peer "$impl" ok "$spec token for --aud api-b" "jwks-$spec.json" "$t.b" "$ISS" api-b
    done
  else
    fail "$spec: issue --aud api-b: $(oneline issue.err)"
  fi

  # A wrapped token is a JWT (typ JWT, no sub/aud): not an RFC 9068 access token.
  if tk --keystore "$ks" --config policy.yaml issue --format wrapped --client-id svc --sub bob --scope read \
      2>issue.err | tr -d '\n' >"$t.wrapped" && is_jws "$t.wrapped"; then
    for impl in pyjwt jwcrypto; do
      peer "$impl" refuse "$spec wrapped token is not taken for an at+jwt" "jwks-$spec.json" "$t.wrapped"
    done
  else
    fail "$spec: issue --format wrapped: $(oneline issue.err)"
  fi

  # The phantom JWT of an opaque token is an at+jwt too.
  if tk --keystore "$ks" --config policy.yaml issue --format opaque --client-id svc --sub bob --scope read \
      >opaque.txt 2>issue.err &&
     tk --keystore "$ks" --config policy.yaml introspect --jwt - <opaque.txt 2>intro.err | tr -d '\n' >"$t.phantom" &&
     is_jws "$t.phantom"; then
    for impl in pyjwt jwcrypto; do
      peer "$impl" ok "$spec phantom JWT of an opaque token verifies" "jwks-$spec.json" "$t.phantom"
    done
  else
    fail "$spec: opaque issue / introspect --jwt: $(oneline issue.err) $(oneline intro.err)"
  fi
done

summary
