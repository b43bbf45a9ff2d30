#!/usr/bin/env bash
# The phantom token pattern behind a real nginx: `auth_request` asks `tokctl serve`'s GET /phantom
# about the client's opaque token, and nginx forwards the phantom JWT to the API.
#
#   bash tests/interop/phantom_nginx.sh /path/to/tokctl
#
# Set-up: a policy with an app (opaque access tokens) and a gateway client; `tokctl serve` on a
# free loopback port; nginx (Debian's, with ngx_http_auth_request_module) with the configuration
# of examples/serve/nginx-phantom.conf, its placeholders filled in, in front of a backend that
# echoes the Authorization header it receives.
# Checks, each through nginx:
#   - no token: 401 with a Bearer challenge (RFC 6750 §3), passed on by nginx;
#   - an unknown token: 401, error="invalid_token";
#   - the app's opaque token, on GET and on POST with a body: the API sees "Bearer <JWT>", and
#     PyJWT verifies that JWT against tokctl's /oauth/jwks (typ at+jwt, the app's client_id and
#     scope, the issuer);
#   - a DPoP-bound token (RFC 9449; proofs made with PyJWT): with the DPoP scheme and a proof for
#     the API request, the API gets a phantom JWT with cnf.jkt; the same proof again, the token as
#     a bearer token, or a proof for another URL: 401;
#   - after the app revokes its token (RFC 7009, over HTTP): 401 again;
#   - a gateway with a wrong secret: nginx answers 500 (fails closed), the API is never reached;
#   - the tokctl log holds neither the opaque token, the JWT, nor the gateway's secret.
# Peers: nginx, curl, jq, /usr/bin/python3 with python3-jwt.

set -u
set -o pipefail
TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"
need_tokctl "$0"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { fail "nginx is installed (scripts/install-deps)"; prereq_ok=0; }
for tool in curl jq; do command -v "$tool" >/dev/null || { fail "$tool is not installed"; prereq_ok=0; }; done
"$PY" -c 'import jwt' 2>/dev/null || { fail "PyJWT (python3-jwt) is not installed for $PY"; prereq_ok=0; }
((prereq_ok)) || { interop_summary phantom-nginx; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/phantom-nginx.XXXXXX") || exit 1
server="" proxy=""
cleanup() {
  [[ -n $proxy ]] && kill "$proxy" 2>/dev/null && wait "$proxy" 2>/dev/null
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [[ ${TOKCTL_INTEROP_KEEP:-0} == 1 ]] && echo "work directory kept: $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: N distinct free ports (all bound at once, so no two are the same: two picks in a row
# may give one port twice, and nginx then proxies the API to itself).
free_ports() {
  "$PY" -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
tokctl_port=$(free_ports 1)
ISSUER=http://127.0.0.1:$tokctl_port
cat > "$work/p.yaml" <<YAML
issuer: $ISSUER
scopes:
  - name: read
YAML
T() { timeout 30 "$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" "$@"; }
T keys add --alg ES256 -q > /dev/null || { fail "keys add"; interop_summary phantom-nginx; exit 1; }
APP_SECRET=$(T -o json clients add app --scope read --format opaque | jq -r .client_secret)
GW_SECRET=$(T -o json clients add gateway --grant none | jq -r .client_secret)
if [[ -z $APP_SECRET || $APP_SECRET == null || -z $GW_SECRET || $GW_SECRET == null ]]; then
  fail "clients add app and gateway"; interop_summary phantom-nginx; exit 1
fi
"$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" serve --listen "127.0.0.1:$tokctl_port" \
  > "$work/ready.json" 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do [[ -s $work/ready.json ]] && break; sleep 0.05; done
[[ -s $work/ready.json ]] || { fail "tokctl serve is ready"; cat "$work/serve.log"; interop_summary phantom-nginx; exit 1; }

# nginx: the example configuration with its placeholders filled in, and a backend that echoes the
# Authorization header it gets.
read -r nginx_port backend_port < <(free_ports 2)
mkdir -p "$work/nginx/tmp"
gateway_basic=$(printf 'gateway:%s' "$GW_SECRET" | base64 -w0)
wrong_basic=$(printf 'gateway:%s' "not-the-secret" | base64 -w0)
sed -e "s|@TOKCTL@|127.0.0.1:$tokctl_port|g" -e "s|@GATEWAY_BASIC@|$gateway_basic|g" \
    -e "s|@API@|127.0.0.1:$backend_port|g" -e "s|@ORIGIN@|http://127.0.0.1:$nginx_port|g" \
    "$REPO/examples/serve/nginx-phantom.conf" > "$work/nginx/site.conf"
cat > "$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    include $work/nginx/site.conf;
    # The same, with a gateway secret tokctl does not know.
    location /misconfigured/ {
      auth_request /_phantom_wrong;
      proxy_pass http://127.0.0.1:$backend_port;
    }
    location = /_phantom_wrong {
      internal;
      proxy_method GET;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Proxy-Authorization "Basic $wrong_basic";
      proxy_pass http://127.0.0.1:$tokctl_port/phantom;
    }
  }
  server {
    listen 127.0.0.1:$backend_port;
    location / {
      default_type text/plain;
      return 200 "\$http_authorization";
    }
  }
}
NGINX
"$NGINX" -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2> "$work/nginx/start.err" &
proxy=$!
NG=http://127.0.0.1:$nginx_port
for _ in $(seq 100); do curl -s -o /dev/null "$NG/" && break; sleep 0.05; done
if ! curl -s -o /dev/null "$NG/"; then
  fail "nginx starts with examples/serve/nginx-phantom.conf"
  sed 's/^/    /' "$work/nginx/start.err" "$work/nginx/error.log" 2>/dev/null | head -20
  interop_summary phantom-nginx; exit 1
fi
pass "nginx starts with examples/serve/nginx-phantom.conf"

# call URL [curl args...]: prints "STATUS<TAB>WWW-Authenticate<TAB>body".
call() {
  local url=$1; shift
  curl -s -D "$work/h" -o "$work/b" "$@" "$url" > /dev/null
  local status challenge
  status=$(awk 'NR == 1 { print $2 }' "$work/h")
  # Every challenge, joined by " | ": there must be exactly one.
  challenge=$(grep -i '^www-authenticate:' "$work/h" | cut -d' ' -f2- | tr -d '\r' | paste -sd'|' | sed 's/|/ | /g')
  printf '%s\t%s\t%s' "$status" "$challenge" "$(cat "$work/b")"
}
expect() {  # expect NAME GOT PATTERN
  if [[ $2 == $3 ]]; then pass "$1"; else fail "$1 (got: $(printf '%s' "$2" | head -c 300))"; fi
}

got=$(call "$NG/api/orders")
expect "no token: 401 with one Bearer challenge, no error code (RFC 6750 §3.1)" "$got" $'401\tBearer realm="'"$ISSUER"$'"\t'*
got=$(call "$NG/api/orders" -H "Authorization: Bearer not-a-real-token")
expect "an unknown token: 401 invalid_token" "$got" \
  $'401\tBearer realm="'"$ISSUER"'", error="invalid_token", error_description="the token is not active"'$'\t'*

TOKEN=$(curl -s -u "app:$APP_SECRET" -d grant_type=client_credentials -d scope=read "$ISSUER/oauth/token" | jq -r .access_token)
if [[ -z $TOKEN || $TOKEN == null || $TOKEN == eyJ* ]]; then
  fail "the app gets an opaque access token"; interop_summary phantom-nginx; exit 1
fi
pass "the app gets an opaque access token"
gw_token=$(curl -s -u "gateway:$GW_SECRET" -d grant_type=client_credentials "$ISSUER/oauth/token" | jq -r .error)
expect "the gateway (--grant none) may take no token itself" "$gw_token" unauthorized_client
got=$(call "$NG/api/orders" -H "Authorization: Bearer $TOKEN")
expect "an active token: the API gets a Bearer JWT" "$got" $'200\t\tBearer eyJ'*
JWT=${got#*$'\t'*$'\t'Bearer }
got_post=$(call "$NG/api/orders" -H "Authorization: Bearer $TOKEN" -d 'item=1&qty=2')
expect "a POST with a body goes through too (the subrequest is a GET without the body)" "$got_post" $'200\t\tBearer eyJ'*

verdict=$("$PY" - "$ISSUER" "$JWT" <<'PY' 2>&1
import sys, jwt
issuer, token = sys.argv[1:]
try:
    key = jwt.PyJWKClient(issuer + "/oauth/jwks").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], issuer=issuer,
                        options={"require": ["exp", "iat", "iss", "jti"], "verify_aud": False})
    assert jwt.get_unverified_header(token).get("typ") == "at+jwt", "typ"
    assert claims["client_id"] == "app", claims
    assert claims["scope"] == "read", claims
    print("ok")
except Exception as e:
    print("refused: %s: %s" % (type(e).__name__, e))
PY
)
expect "PyJWT verifies the phantom JWT against tokctl's /oauth/jwks" "$verdict" ok

# DPoP (RFC 9449): proofs by an independent implementation (PyJWT), one P-256 key kept in a file.
cat > "$work/dpop.py" <<'PY'
import base64, hashlib, json, os, sys, time, uuid
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
path, htm, htu = sys.argv[1:4]
if os.path.exists(path):
    key = serialization.load_pem_private_key(open(path, "rb").read(), None)
else:
    key = ec.generate_private_key(ec.SECP256R1())
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
# PyJWT 2.6's to_jwk drops leading zero bytes of x and y (1 key in ~128), which RFC 7518 §6.2.1.2
# forbids and tokctl refuses: the coordinates are written full length here.
pub = key.public_key().public_numbers()
coord = lambda v: base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()
jwk = {"kty": "EC", "crv": "P-256", "x": coord(pub.x), "y": coord(pub.y)}
claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
if len(sys.argv) > 4:
    claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(sys.argv[4].encode()).digest()).rstrip(b"=").decode()
print(jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk}))
PY
dpop() { "$PY" "$work/dpop.py" "$work/dpop.pem" "$@"; }
answer=$(curl -s -u "app:$APP_SECRET" -H "DPoP: $(dpop POST "$ISSUER/oauth/token")" -d grant_type=client_credentials \
           -d scope=read "$ISSUER/oauth/token")
DTOKEN=$(jq -r .access_token <<< "$answer")
expect "a token request with a PyJWT DPoP proof gets token_type DPoP" "$(jq -r .token_type <<< "$answer")" DPoP
API_PROOF=$(dpop GET "$NG/api/orders" "$DTOKEN")
got=$(call "$NG/api/orders" -H "Authorization: DPoP $DTOKEN" -H "DPoP: $API_PROOF")
expect "a DPoP-bound token with a proof for the API request: the API gets a Bearer JWT" "$got" $'200\t\tBearer eyJ'*
DJWT=${got#*$'\t'*$'\t'Bearer }
jkt=$("$PY" - "$DJWT" "$work/dpop.pem" <<'PY' 2>&1
import base64, hashlib, json, sys
import jwt
from cryptography.hazmat.primitives import serialization
token, path = sys.argv[1:]
cnf = jwt.decode(token, options={"verify_signature": False}).get("cnf", {})
pub = serialization.load_pem_private_key(open(path, "rb").read(), None).public_key().public_numbers()
coord = lambda v: base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()
members = {"kty": "EC", "crv": "P-256", "x": coord(pub.x), "y": coord(pub.y)}  # full length, as in dpop.py
canon = json.dumps({k: members[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
want = base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()
print("ok" if cnf.get("jkt") == want else "cnf %s, want jkt %s" % (cnf, want))
PY
)
expect "the phantom JWT carries cnf.jkt, the RFC 7638 thumbprint of the proof key" "$jkt" ok
got=$(call "$NG/api/orders" -H "Authorization: DPoP $DTOKEN" -H "DPoP: $API_PROOF")
expect "the same proof again: 401 with a DPoP challenge, invalid_dpop_proof" "$got" \
  $'401\tDPoP algs="'*'error="invalid_dpop_proof", error_description="DPoP proof: its jti was used before"'$'\t'*
got=$(call "$NG/api/orders" -H "Authorization: Bearer $DTOKEN")
expect "the DPoP-bound token as a bearer token: 401 invalid_token, with a DPoP challenge" "$got" \
  $'401\tDPoP algs="'*'realm="'"$ISSUER"'", error="invalid_token"'*
got=$(call "$NG/api/orders" -H "Authorization: DPoP $DTOKEN" -H "DPoP: $(dpop GET "$NG/api/other" "$DTOKEN")")
expect "a proof made for another URL: 401 invalid_dpop_proof" "$got" $'401\tDPoP algs="'*'error="invalid_dpop_proof"'*
got=$(call "$NG/api/orders" -H "Host: other-api.test" -H "Authorization: DPoP $DTOKEN" \
        -H "DPoP: $(dpop GET "http://other-api.test/api/orders" "$DTOKEN")")
expect "a proof for another API, with that API's Host: 401 (the origin is fixed in nginx)" "$got" \
  $'401\tDPoP algs="'*'error="invalid_dpop_proof"'*

got=$(call "$NG/misconfigured/orders" -H "Authorization: Bearer $TOKEN")
expect "a gateway with a wrong secret: nginx fails closed (500), the API is not reached" "$got" $'500\t\t'*
if grep -q '"path":"/phantom","status":407' "$work/serve.log"; then
  pass "tokctl answered the wrong gateway secret 407"
else
  fail "tokctl answered the wrong gateway secret 407"
fi

curl -s -u "app:$APP_SECRET" -d "token=$TOKEN" "$ISSUER/oauth/revoke" > /dev/null
got=$(call "$NG/api/orders" -H "Authorization: Bearer $TOKEN")
expect "after revocation: 401 invalid_token" "$got" $'401\tBearer realm="'"$ISSUER"'", error="invalid_token"'*

if grep -qF "$TOKEN" "$work/serve.log" || grep -qF "$DTOKEN" "$work/serve.log" || grep -qF "$GW_SECRET" "$work/serve.log" ||
   grep -q 'eyJ' "$work/serve.log"; then
  fail "the tokctl log holds no token, JWT or gateway secret"
else
  pass "the tokctl log holds no token, JWT or gateway secret"
fi
if [[ $(grep -c '"client_id":"gateway","latency_us":[0-9]*,"method":"GET","path":"/phantom","status":200' "$work/serve.log") -eq 3 ]]; then
  pass "the access log names the gateway on each /phantom request"
else
  fail "the access log names the gateway on each /phantom request"
fi
interop_summary phantom-nginx
