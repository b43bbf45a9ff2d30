#!/usr/bin/env bash
# `tokctl serve` interop: what the server issues verifies in an independent implementation,
# against the keys the server publishes over HTTP.
#
#   bash tests/interop/serve_run.sh /path/to/tokctl
#
# Starts `tokctl serve --dev` on a free loopback port, takes a client_credentials token with
# curl (client_secret_basic), and has PyJWT fetch /oauth/jwks itself (jwt.PyJWKClient) and verify
# the access token (ES256, typ at+jwt, iss, aud, exp) and the RFC 9701 introspection response
# (typ token-introspection+jwt, aud the caller). Negative controls: a tampered token and a wrong
# audience are refused. Peers: curl, jq, /usr/bin/python3 with python3-jwt.
#
# Output: one line per check, then "serve-interop: N passed, M failed"; exit 1 when anything failed.

set -u
set -o pipefail
TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"
need_tokctl "$0"
for tool in curl jq; do command -v "$tool" >/dev/null || { fail "$tool is not installed"; prereq_ok=0; }; done
"$PY" -c 'import jwt' 2>/dev/null || { fail "PyJWT (python3-jwt) is not installed for $PY"; prereq_ok=0; }
((prereq_ok)) || { interop_summary serve-interop; exit 1; }

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
"$TOKCTL" serve --dev --listen 127.0.0.1:0 > "$work/ready.json" 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do [[ -s $work/ready.json ]] && break; sleep 0.05; done
URL=http://$(jq -r .listen "$work/ready.json")
SECRET=$(jq -r .client_secret "$work/ready.json")
TOKEN=$(curl -sf -u "dev:$SECRET" -d grant_type=client_credentials -d scope=read "$URL/oauth/token" | jq -r .access_token)
if [[ -z $TOKEN || $TOKEN == null ]]; then
  fail "client_credentials token from tokctl serve"
  interop_summary serve-interop
  exit 1
fi
pass "client_credentials token from tokctl serve"
curl -sf -u "dev:$SECRET" -H "Accept: application/token-introspection+jwt" -d "token=$TOKEN" "$URL/oauth/introspect" \
  > "$work/introspection.jwt"

# PyJWT: verify(KIND TOKEN AUDIENCE TYP) prints "ok" or the exception.
verify() {
  "$PY" - "$URL" "$2" "$3" "$4" <<'PY' 2>&1
import sys, jwt
url, token, aud, typ = sys.argv[1:]
try:
    key = jwt.PyJWKClient(url + "/oauth/jwks").get_signing_key_from_jwt(token)
    # RFC 9068 access tokens carry exp; an RFC 9701 response need not (iat, iss, aud).
    required = ["iat", "iss", "aud"] + (["exp", "sub", "jti"] if typ == "at+jwt" else [])
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=aud, issuer=url,
                        options={"require": required})
    if typ == "token-introspection+jwt":
        assert claims["token_introspection"]["active"] is True, "not active"
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == typ, "typ is %r" % header.get("typ")
    print("ok")
except Exception as e:
    print("refused: %s: %s" % (type(e).__name__, e))
PY
}
check() {  # check NAME EXPECT(ok|refused) TOKEN AUDIENCE TYP
  local got
  got=$(verify "$1" "$3" "$4" "$5")
  if [[ $got == "$2"* ]]; then pass "$1"; else fail "$1 (PyJWT: $got)"; fi
}
check "PyJWT verifies the access token against /oauth/jwks" ok "$TOKEN" "$URL" at+jwt
check "PyJWT verifies the RFC 9701 introspection response" ok "$(cat "$work/introspection.jwt")" dev token-introspection+jwt
check "PyJWT refuses the access token for another audience" refused "$TOKEN" https://other.test at+jwt
sig=${TOKEN##*.}
flipped=${TOKEN%.*}.$( [[ ${sig:0:1} == A ]] && echo B || echo A )${sig:1}
check "PyJWT refuses a tampered access token" refused "$flipped" "$URL" at+jwt
if grep -qF "$SECRET" "$work/serve.log" || grep -qF "$sig" "$work/serve.log"; then
  fail "the server log holds no secret and no token"
else
  pass "the server log holds no secret and no token"
fi
interop_summary serve-interop
