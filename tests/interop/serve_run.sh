#!/usr/bin/env bash
# `tokctl serve` interop: what the server issues verifies in an independent implementation,
# against the keys the server publishes over HTTP.
#
#   bash tests/interop/serve_run.sh /path/to/tokctl
#
# 1. `tokctl serve --dev` on a free loopback port: a client_credentials token taken with curl
#    (client_secret_basic); PyJWT fetches /oauth/jwks itself (jwt.PyJWKClient) and verifies the
#    access token (ES256, typ at+jwt, iss, aud, exp) and the RFC 9701 introspection response (typ
#    token-introspection+jwt, aud the caller). Negative controls: a tampered token and a wrong
#    audience are refused; the server log holds neither the secret nor the token.
# 2. `tokctl serve` on a real policy (a client added with `clients add`, an exchange rule, a
#    refresh token issued by the CLI): an unmodified openid-client (npm, tests/interop/node) does
#    discovery, client_credentials, refresh with rotation and reuse detection, token exchange,
#    introspection and revocation, and node jose verifies the token with the remote JWKS.
# Peers: curl, jq, /usr/bin/python3 with python3-jwt, node with tests/interop/node installed.
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
kill "$server" && wait "$server"
server=""

# --- an unmodified openid-client (npm, pinned in tests/interop/node) ---------------------------
# A server on a real policy: a client allowed client_credentials, refresh and token exchange, an
# exchange rule, and a refresh token issued by the CLI on the same keystore and store.
NODE_DIR=$HERE/node
if ! command -v node >/dev/null || [[ ! -d $NODE_DIR/node_modules/openid-client ]]; then
  fail "openid-client is installed (run scripts/install-deps: npm ci in tests/interop/node)"
  interop_summary serve-interop
  exit 1
fi
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
cat > "$work/p.yaml" <<YAML
issuer: $URL
scopes:
  - name: read
exchange:
  - from: api-a
    to: [api-b]
    scopes: [read]
    modes: [delegate]
clients:
YAML
T() { "$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" "$@"; }
T keys add --alg ES256 -q > /dev/null
APP_SECRET=$(T -o json clients add app --grant client_credentials --grant refresh_token --grant token_exchange \
               --scope read --audience api-a | jq -r .client_secret)
REFRESH=$(T -o json issue --client-id app --sub alice --scope read --with-refresh | jq -r .refresh_token)
# The binary itself in the background, not the T function: $! must be the server's PID (a
# backgrounded function is a subshell, and killing it left the server running after the suite).
# --dpop-nonce: openid-client's and tokctl's own DPoP proofs must carry the server's nonce (RFC
# 9449 §8), which each client learns from its first, refused, request.
"$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" serve --listen "127.0.0.1:$port" --dpop-nonce \
  > "$work/ready2.json" 2> "$work/serve2.log" &
server=$!
for _ in $(seq 100); do [[ -s $work/ready2.json ]] && break; sleep 0.05; done
while IFS= read -r line; do
  case $line in
    "ok   "*) pass "${line#ok   }" ;;
    *) fail "${line#FAIL }" ;;
  esac
done < <(cd "$NODE_DIR" && timeout 60 node serve_client.js "$URL" app "$APP_SECRET" "$REFRESH" 2>&1)
# Every log of the suite: no client secret, no refresh token, no JWT (whatever openid-client was
# issued), and one JSON line per request.
if grep -qF "$APP_SECRET" "$work/serve2.log" || grep -qF "$REFRESH" "$work/serve2.log" ||
   grep -q 'eyJ' "$work/serve.log" "$work/serve2.log"; then
  fail "no server log of the suite holds a secret, a refresh token or a JWT"
else
  pass "no server log of the suite holds a secret, a refresh token or a JWT"
fi
if [[ $(grep -c '"path":"/oauth/token"' "$work/serve2.log") -ge 3 ]] && jq -e . "$work/serve2.log" > /dev/null; then
  pass "the access log has one JSON object per request (token requests included)"
else
  fail "the access log has one JSON object per request (token requests included)"
fi

# --dpop-nonce on the wire, with proofs made by PyJWT: without a nonce, 400 use_dpop_nonce and a
# DPoP-Nonce header; with that nonce, a DPoP token.
pyjwt_proof() {  # pyjwt_proof URL [NONCE]: a proof for POST URL by a fresh P-256 key
  "$PY" - "$@" <<'PY'
import base64, json, sys, time, uuid
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
claims = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": sys.argv[1], "iat": int(time.time())}
if len(sys.argv) > 2:
    claims["nonce"] = sys.argv[2]
# PyJWT 2.6's to_jwk drops leading zero bytes of x and y (1 key in ~128), which RFC 7518 §6.2.1.2
# forbids and tokctl refuses: the coordinates are written full length here.
pub = key.public_key().public_numbers()
coord = lambda v: base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()
jwk = {"kty": "EC", "crv": "P-256", "x": coord(pub.x), "y": coord(pub.y)}
print(jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk}))
PY
}
asked=$(curl -s -D "$work/nonce.h" -u "app:$APP_SECRET" -H "DPoP: $(pyjwt_proof "$URL/oauth/token")" \
          -d grant_type=client_credentials -d scope=read "$URL/oauth/token" | jq -r .error)
nonce=$(awk -F': ' 'tolower($1) == "dpop-nonce" { print $2 }' "$work/nonce.h" | tr -d '\r')
answered=$(curl -s -u "app:$APP_SECRET" -H "DPoP: $(pyjwt_proof "$URL/oauth/token" "$nonce")" \
             -d grant_type=client_credentials -d scope=read "$URL/oauth/token" | jq -r .token_type)
if [[ $asked == use_dpop_nonce && -n $nonce && $answered == DPoP ]]; then
  pass "serve --dpop-nonce: a PyJWT proof without a nonce gets use_dpop_nonce and DPoP-Nonce; with it, a DPoP token"
else
  fail "serve --dpop-nonce: use_dpop_nonce, then a DPoP token (got: $asked, nonce '$nonce', then $answered)"
fi

# tokctl's own remote mode as the DPoP client (RFC 9449), with a key made by openssl: the token is
# bound (token_type DPoP), and introspection over HTTP reports the binding.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/dpop.pem" 2> /dev/null
chmod 600 "$work/dpop.pem"
dpop_answer=$(TOKCTL_CLIENT_SECRET=$APP_SECRET timeout 30 "$TOKCTL" -o json issue --server "$URL" --client-id app \
                --dpop-key "$work/dpop.pem" --scope read 2> "$work/dpop.err")
dpop_token=$(jq -r .access_token <<< "$dpop_answer" 2> /dev/null)
dpop_seen=$(TOKCTL_CLIENT_SECRET=$APP_SECRET timeout 30 "$TOKCTL" -o json introspect --server "$URL" --client-id app \
              "$dpop_token" 2>> "$work/dpop.err" | jq -r '.token_type + " " + (.cnf.jkt // "none")' 2> /dev/null)
if [[ $(jq -r .token_type <<< "$dpop_answer" 2> /dev/null) == DPoP && $dpop_seen == "DPoP "?* && $dpop_seen != "DPoP none" ]]; then
  pass "issue --server --dpop-key gets a DPoP-bound token; introspection reports token_type DPoP and cnf.jkt"
else
  fail "issue --server --dpop-key gets a DPoP-bound token (answer: $dpop_answer; introspection: $dpop_seen; $(head -c 300 "$work/dpop.err"))"
fi

kill "$server" && wait "$server"  # the policy server is done: it must not outlive the suite
server=""

# --- the HTTP layer against hostile clients (a --dev server of its own) -------------------------
"$TOKCTL" serve --dev --listen 127.0.0.1:0 > "$work/ready3.json" 2> "$work/serve3.log" &
server=$!
for _ in $(seq 100); do [[ -s $work/ready3.json ]] && break; sleep 0.05; done
HP=$(jq -r .listen "$work/ready3.json")
# A method is whatever the client sends: `curl -X "$TOKEN"` must not put the token in the log.
FAKE=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtZXRob2QifQ.bWV0aG9kLXNpZ25hdHVyZS10ZXN0
code=$(curl -s -o /dev/null -w '%{http_code}' -X "$FAKE" "http://$HP/oauth/token")
if [[ $code == 501 ]] && ! grep -qF "$FAKE" "$work/serve3.log" && grep -q '"method":"(other)"' "$work/serve3.log"; then
  pass "an unknown method is 501 and logged as (other), never verbatim"
else
  fail "an unknown method is 501 and logged as (other), never verbatim (status $code)"
fi
# raw HOST:PORT once|endless REQUEST: sends REQUEST (printf escapes), with `endless` followed by
# trailer lines until the server closes; prints the status codes of every answer and the seconds.
raw() {
  "$PY" - "$1" "$2" "$3" <<'PY'
import socket, sys, time, threading
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.settimeout(8)
endless = sys.argv[2] == "endless"
data = sys.argv[3].encode().decode("unicode_escape").encode("latin1")
def feed():
    try:
        s.sendall(data)
        block = (b"X-T: " + b"v" * 200 + b"\r\n") * 100
        while endless:
            s.sendall(block)
    except OSError:
        pass
threading.Thread(target=feed, daemon=True).start()
t0, out = time.time(), b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
import re
print(" ".join(c.decode() for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)), "%.1f" % (time.time() - t0))
PY
}
got=$(raw "$HP" endless 'POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n')
if [[ $got =~ ^431\ [0-2]\. ]]; then pass "endless chunked trailers: 431 at once"; else fail "endless chunked trailers: 431 at once (got: $got)"; fi
got=$(raw "$HP" once 'POST /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
if [[ $got =~ ^400\ [0-9.]+$ ]]; then pass "Transfer-Encoding: gzip is 400 and nothing is smuggled behind it"
else fail "Transfer-Encoding: gzip is 400 and nothing is smuggled behind it (got: $got)"; fi
kill "$server" && wait "$server"
server=""
interop_summary serve-interop
