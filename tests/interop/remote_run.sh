#!/usr/bin/env bash
# Remote mode interop: tokctl as an OAuth client (libcurl) against real servers and a faulty one.
#
#   bash tests/interop/remote_run.sh /path/to/tokctl
#
# 1. `tokctl serve` over HTTP on a real policy (clients app / poster / pkjwt, an exchange rule, an
#    assertion issuer, a profile): RFC 8414 discovery and its cache (requests counted in the
#    server's access log), client_credentials with client_secret_basic (secret from a file, from
#    $TOKCTL_CLIENT_SECRET, from a profile, from the environment alone), client_secret_post,
#    private_key_jwt (--client-key, and the keystore's active key), refresh (a refresh token
#    issued by the CLI on the same keystore and store), jwt-bearer (an assertion signed by a second
#    keystore, the policy's assertion issuer), token exchange (exchange --server and issue --grant
#    token-exchange), introspection (JSON, RFC 9701 --jwt, --phantom, --batch) before and after
#    revocation, verify --server; JWKS caching and key rotation (one refetch for a new kid, also
#    for a whole verify --batch; none within the rate limit for an unknown one), --offline; OAuth
#    errors (exit 6), usage errors (exit 2), an issuer mismatch (exit 5); no secret (nor a password
#    in the --server URL) echoed, no secret, refresh token or JWT in the server log; the
#    --client-secret warning even with -q.
# 2. `tokctl serve` over HTTPS with mutual TLS, on a throwaway CA made here with openssl (server
#    certificate for IP:127.0.0.1, client certificate for DNS:mtls-client.test): tls_client_auth
#    (flags, and a profile's cacert/cert/key), --cacert, no --cacert (exit 5), --insecure (a
#    warning, also with -q), ETag revalidation of the JWKS (304).
# 3. An unmodified node oidc-provider (tests/interop/node/oidc_provider_server.mjs): OpenID
#    discovery, client_credentials, introspection, revocation, verify --server of its JWTs.
# 4. Error paths against tests/interop/node/fault_server.mjs and a closed port: connection
#    refused (retried with backoff; curl's reason), 5xx (retried only when idempotent, hits
#    counted by the server), 503 then success, timeout (curl's reason), invalid JSON, an oversized
#    body, an error without / with an OAuth error body, discovery finding no metadata, --batch on
#    one connection, --offline with an empty cache.
# Peers: curl, jq, openssl, node (with tests/interop/node installed: npm ci), /usr/bin/python3
# (a free port). Every tokctl call runs under `timeout`, so a hang is a failure, not a stall.
# TOKCTL_INTEROP_KEEP=1 keeps the work directory.
#
# Output: one line per check ("ok" or "FAIL"), then
#   remote-interop: N passed, M failed
# Exit status 1 when anything failed.

set -u
set -o pipefail
TOKCTL=${1:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODE_DIR=$HERE/node
PY=/usr/bin/python3
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"
need_tokctl "$0"
for tool in curl jq openssl node timeout; do
  command -v "$tool" >/dev/null || { fail "$tool is not installed"; prereq_ok=0; }
done
[[ -x $PY ]] || { fail "$PY is not installed"; prereq_ok=0; }
[[ -d $NODE_DIR/node_modules/oidc-provider ]] ||
  { fail "oidc-provider is installed (run scripts/install-deps: npm ci in tests/interop/node)"; prereq_ok=0; }
((prereq_ok)) || { interop_summary remote-interop; exit 1; }

# A proxy of the machine would see (or break) the loopback traffic: only the proxy check uses one.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# --- work directory, servers, helpers ---------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/tokctl-remote-interop.XXXXXX") || exit 1
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [[ ${TOKCTL_INTEROP_KEEP:-0} == 1 ]]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work" || exit 1
umask 077
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^TOKCTL_')
export XDG_CACHE_HOME=$work/cache

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# start NAME READY LOG CMD...: CMD in the background (stdout to READY, stderr to LOG), killed at
# exit; waits up to 15 s for its ready line. Returns 1 (after a FAIL line) when none comes.
start() {
  local name=$1 ready=$2 log=$3
  shift 3
  "$@" >"$ready" 2>"$log" &
  pids+=($!)
  local _
  for _ in $(seq 150); do
    [[ -s $ready ]] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  fail "$name starts and prints its ready line ($(oneline "$log" 300))"
  return 1
}

# t ARGS...: tokctl under a 20 s limit; stdout in $work/o, stderr in $work/e, exit status in $rc.
t() { timeout 20 "$TOKCTL" "$@" >"$work/o" 2>"$work/e"; rc=$?; }
# verdict NAME: pass when the command just before it succeeded (a [[ test ]] of the last t's
# results), else fail showing the last t's exit status and stderr.
verdict() {
  local st=$?
  if ((st == 0)); then pass "$1"; else fail "$1 (exit $rc; stderr: $(oneline "$work/e" 300))"; fi
}
out() { cat "$work/o"; }
has_err() { grep -qF -- "$1" "$work/e"; }
# claim FILE JQ: a jq filter over the decoded token in FILE ({"header":..,"payload":..}).
claim() { "$TOKCTL" decode -o json "$1" 2>/dev/null | jq -r "$2"; }
is_jwt() { [[ $(head -1 "$1") =~ ^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; }
# count PATH LOG: requests for PATH in a `tokctl serve` access log.
count() { grep -c "\"path\":\"$1\"" "$2"; }
setup_failed() { fail "setup: $1"; interop_summary remote-interop; exit 1; }

# ===== 1. tokctl serve over HTTP ===============================================================
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
LOG=$work/serve.log
WK=/.well-known/oauth-authorization-server
T() { "$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" "$@"; }
S() { t --config "$work/p.yaml" --keystore "$work/ks" "$@"; }

# The private_key_jwt client's key, the assertion issuer's keystore, a client_secret_post client.
"$TOKCTL" keys generate --alg ES256 --out pk.jwk >/dev/null 2>&1 || setup_failed "keys generate"
"$TOKCTL" keys convert pk.jwk --public | jq -c '{keys: [.]}' > pk.jwks.json || setup_failed "keys convert"
"$TOKCTL" keys generate --alg ES256 --out stranger.jwk >/dev/null 2>&1 || setup_failed "keys generate"
"$TOKCTL" --keystore pk-ks keys import pk.jwk -q >/dev/null || setup_failed "keys import pk.jwk (the pkjwt keystore)"
{ "$TOKCTL" --keystore idp-ks keys add --alg ES256 -q >/dev/null && "$TOKCTL" --keystore idp-ks keys jwks > idp.jwks.json; } ||
  setup_failed "the assertion issuer's keystore"
printf 'issuer: https://idp.test\n' > idp.yaml
POST_SECRET=$(openssl rand -hex 32)
POST_HASH=$(printf '%s' "$POST_SECRET" | sha256sum | cut -d' ' -f1)
printf '%s' "$POST_SECRET" > post.secret
cat > p.yaml <<YAML
issuer: $URL
scopes:
  - name: read
  - name: write
exchange:
  - from: api-a
    to: [api-b]
    scopes: [read]
    modes: [delegate]
assertion_issuers:
  - issuer: https://idp.test
    jwks: idp.jwks.json
profiles:
  main:
    server: $URL
    client_id: app
    client_secret_file: app.secret
clients:
  poster: {secret_hash: "sha256:$POST_HASH", token_endpoint_auth_method: client_secret_post, scopes: [read], audiences: [api-a]}
  pkjwt: {jwks: pk.jwks.json, token_endpoint_auth_method: private_key_jwt, grants: [client_credentials], scopes: [read], audiences: [api-a]}
YAML
T keys add --alg ES256 -q > /dev/null || setup_failed "keys add"
APP_SECRET=$(T -o json clients add app --grant client_credentials --grant refresh_token --grant token_exchange \
               --grant jwt_bearer --scope read --scope write --audience api-a --audience https://rs.test/ |
             jq -r .client_secret)
[[ -n $APP_SECRET && $APP_SECRET != null ]] || setup_failed "clients add app"
printf '%s\n' "$APP_SECRET" > app.secret
REFRESH=$(T -o json issue --client-id app --sub alice --scope read --with-refresh | jq -r .refresh_token)
REFRESH2=$(T -o json issue --client-id app --sub bob --scope read --with-refresh | jq -r .refresh_token)
[[ -n $REFRESH && $REFRESH != null && -n $REFRESH2 && $REFRESH2 != null ]] || setup_failed "refresh tokens from the local CLI"
start "tokctl serve (HTTP)" ready.json "$LOG" \
  "$TOKCTL" --config "$work/p.yaml" --keystore "$work/ks" serve --listen "127.0.0.1:$PORT" ||
  { interop_summary remote-interop; exit 1; }
APP=(--server "$URL" --client-id app --client-secret-file app.secret)

# Discovery and its cache.
S issue "${APP[@]}" --scope read
cp o cc1.tok
[[ $rc == 0 ]] && is_jwt cc1.tok && [[ $(count "$WK" "$LOG") == 1 && $(claim cc1.tok .payload.client_id) == app ]]
verdict "serve: discovery, then client_credentials with client_secret_basic (secret from --client-secret-file)"
TOKCTL_CLIENT_SECRET=$APP_SECRET S issue --server "$URL" --client-id app --scope read
[[ $rc == 0 ]] && is_jwt o
verdict "serve: client_secret_basic with the secret from \$TOKCTL_CLIENT_SECRET"
[[ $(count "$WK" "$LOG") == 1 && $(count /.well-known/openid-configuration "$LOG") == 0 ]]
verdict "serve: the metadata is cached (the second command made no /.well-known request)"
grep -lqF "\"url\":\"$URL$WK\"" cache/tokctl/http/*.json 2>/dev/null
verdict "serve: the discovery cache file exists under \$XDG_CACHE_HOME/tokctl/http"
S issue --profile main --scope read
[[ $rc == 0 ]] && is_jwt o
verdict "serve: --profile (server, client_id, client_secret_file from the policy's profiles:)"
TOKCTL_PROFILE=main S issue --scope read
[[ $rc == 0 ]] && is_jwt o
verdict "serve: \$TOKCTL_PROFILE selects the profile"
TOKCTL_SERVER=$URL TOKCTL_CLIENT_ID=app TOKCTL_CLIENT_SECRET_FILE=$work/app.secret t issue --scope read
[[ $rc == 0 ]] && is_jwt o
verdict "serve: \$TOKCTL_SERVER, \$TOKCTL_CLIENT_ID and \$TOKCTL_CLIENT_SECRET_FILE alone"
S issue "${APP[@]}" --client-secret "$APP_SECRET" --scope read
[[ $rc == 0 ]] && grep -qw ps e && ! grep -qF "$APP_SECRET" e
verdict "serve: --client-secret works, warns about ps and does not echo the secret"
S -q issue "${APP[@]}" --client-secret "$APP_SECRET" --scope read
[[ $rc == 0 ]] && is_jwt o && has_err "warning: --client-secret puts the secret" && ! grep -qF "$APP_SECRET" e
verdict "serve: -q does not silence the --client-secret warning (a security warning)"

# Other client authentication methods.
S issue --server "$URL" --client-id poster --client-secret-file post.secret --auth-method client_secret_post --scope read
[[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.client_id) == poster ]]
verdict "serve: client_secret_post (a client registered for it)"
S issue --server "$URL" --client-id poster --client-secret-file post.secret --scope read
[[ $rc == 6 ]] && has_err invalid_client
verdict "serve: the same client with client_secret_basic is refused (exit 6, invalid_client)"
S issue --server "$URL" --client-id pkjwt --client-key pk.jwk --scope read
[[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.client_id) == pkjwt ]]
verdict "serve: private_key_jwt (--client-key; the client's jwks in the policy)"
S issue --server "$URL" --client-id pkjwt --client-key stranger.jwk --scope read
[[ $rc == 6 ]] && has_err invalid_client
verdict "serve: private_key_jwt signed by another key is refused (exit 6, invalid_client)"
t --keystore "$work/pk-ks" issue --server "$URL" --client-id pkjwt --auth-method private_key_jwt --scope read
[[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.client_id) == pkjwt ]]
verdict "serve: private_key_jwt signed by the keystore's active key (pk.jwk imported; no --client-key)"

# Grants.
S -o json issue "${APP[@]}" --refresh-token "$REFRESH"
cp o refresh.json
NEW_REFRESH=$(jq -r '.refresh_token // empty' refresh.json)
[[ $rc == 0 && $(jq -r .access_token refresh.json) == eyJ* && -n $NEW_REFRESH && $NEW_REFRESH != "$REFRESH" ]]
verdict "serve: refresh_token grant with a CLI-issued refresh token (rotated; -o json is the token response)"
S issue "${APP[@]}" --refresh-token "$REFRESH"
[[ $rc == 6 ]] && has_err invalid_grant
verdict "serve: reusing the consumed refresh token is refused (exit 6, invalid_grant)"
S issue "${APP[@]}" --refresh-token "$REFRESH2"
[[ $rc == 0 && $(wc -l < o) == 2 && $(sed -n 1p o) == eyJ* && $(sed -n 2p o) != eyJ* && $(sed -n 2p o) != "$REFRESH2" ]]
verdict "serve: refresh in text mode prints the access token, then the new refresh token"
S issue "${APP[@]}" --scope read --aud https://rs.test/
[[ $rc == 0 && $(claim o .payload.aud) == https://rs.test/ ]]
verdict "serve: client_credentials with --aud (sent as audience)"
S issue "${APP[@]}" --scope read --resource https://rs.test/
[[ $rc == 0 && $(claim o .payload.aud) == https://rs.test/ ]]
verdict "serve: client_credentials with --resource (RFC 8707)"
t --config "$work/idp.yaml" --keystore "$work/idp-ks" issue "${APP[@]}" --grant jwt-bearer --sub alice --scope read
[[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.sub) == alice && $(claim o .payload.client_id) == app ]]
verdict "serve: jwt-bearer (assertion iss = the policy's issuer, signed by the keystore)"
t --config "$work/idp.yaml" --keystore "$work/idp-ks" issue "${APP[@]}" --grant jwt-bearer --sub alice \
  --assertion-iss https://unknown.test --scope read
[[ $rc == 6 ]] && has_err invalid_grant
verdict "serve: jwt-bearer from an issuer the server does not trust is refused (exit 6, invalid_grant)"
S issue "${APP[@]}" --scope 'read write'
cp o subject.tok
S exchange "${APP[@]}" --subject-token subject.tok --audience api-b --scope read
cp o exchanged.tok
[[ $rc == 0 ]] && is_jwt exchanged.tok &&
  [[ $(claim exchanged.tok .payload.aud) == api-b && $(claim exchanged.tok .payload.scope) == read &&
     $(claim exchanged.tok .payload.act.sub) == app ]]
verdict "serve: token exchange with --audience and --scope (aud api-b, scope read, act)"
S exchange "${APP[@]}" --subject-token subject.tok --audience api-c
[[ $rc == 6 ]] && has_err invalid_target
verdict "serve: token exchange to an audience no rule allows (exit 6, invalid_target)"
S issue "${APP[@]}" --grant token-exchange --subject-token subject.tok --aud api-b --scope read
cp o exchanged-issue.tok
[[ $rc == 0 ]] && is_jwt exchanged-issue.tok &&
  [[ $(claim exchanged-issue.tok .payload.aud) == api-b && $(claim exchanged-issue.tok .payload.scope) == read &&
     $(claim exchanged-issue.tok .payload.act.sub) == app ]]
verdict "serve: issue --grant token-exchange (the exchange request): aud api-b, scope read, act"
S issue "${APP[@]}" --grant urn:ietf:params:oauth:grant-type:token-exchange --subject-token subject.tok \
  --subject-token-type access_token --requested-token-type jwt --audience api-c
[[ $rc == 6 ]] && has_err invalid_target
verdict "serve: issue --grant <token-exchange URN> to an audience no rule allows (exit 6, invalid_target)"

# Introspection, revocation.
S issue "${APP[@]}" --scope read
cp o intro.tok
S introspect "${APP[@]}" intro.tok
[[ $rc == 0 && $(jq -r .active o) == true && $(jq -r .client_id o) == app ]]
verdict "serve: introspect --server prints RFC 7662 JSON (active, exit 0)"
jwks_before=$(count /oauth/jwks "$LOG")
S introspect "${APP[@]}" --jwt intro.tok
[[ $rc == 0 && $(jq -r .active o) == true ]] && ! has_err "plain JSON" && (($(count /oauth/jwks "$LOG") > jwks_before))
verdict "serve: introspect --jwt verifies the RFC 9701 answer against the server's JWKS"
S introspect "${APP[@]}" --phantom intro.tok
cp o phantom.jwt
[[ $rc == 0 ]] && is_jwt phantom.jwt
verdict "serve: introspect --phantom prints the phantom JWT (exit 0)"
S verify phantom.jwt --server "$URL"
[[ $rc == 0 ]]
verdict "serve: the phantom JWT verifies with verify --server"
S revoke "${APP[@]}" intro.tok
[[ $rc == 0 ]]
verdict "serve: revoke --server (exit 0)"
S -o json revoke "${APP[@]}" --token-type-hint access_token intro.tok
[[ $rc == 0 && $(jq -r .revoked o) == true ]]
verdict "serve: revoke --server -o json prints {\"revoked\":true}"
S introspect "${APP[@]}" intro.tok
[[ $rc == 1 && $(jq -r .active o) == false ]]
verdict "serve: introspect after revocation: inactive (exit 1)"
S introspect "${APP[@]}" --jwt intro.tok
[[ $rc == 1 && $(jq -r .active o) == false ]]
verdict "serve: introspect --jwt after revocation: inactive (exit 1)"
S introspect "${APP[@]}" --phantom intro.tok
[[ $rc == 1 && ! -s o ]]
verdict "serve: introspect --phantom after revocation: 204, exit 1, nothing on stdout"
for _ in 1 2 3; do S issue "${APP[@]}" --scope read; out; done > batch.txt
cat intro.tok >> batch.txt
S introspect "${APP[@]}" --batch < batch.txt
[[ $rc == 1 && $(wc -l < o) == 4 && $(jq -sc 'map(.line)' o) == '[1,2,3,4]' &&
   $(jq -sc 'map(.active)' o) == '[true,true,true,false]' ]]
verdict "serve: introspect --batch: one JSON line per token with its line, exit 1 (one inactive)"
head -3 batch.txt > batch3.txt
S introspect "${APP[@]}" --batch < batch3.txt
[[ $rc == 0 && $(wc -l < o) == 3 ]]
verdict "serve: introspect --batch of active tokens only: exit 0"
S verify cc1.tok --server "$URL"
[[ $rc == 0 ]]
verdict "serve: verify --server (JWKS by discovery, iss checked) of a valid token: exit 0"
tamper_jws cc1.tok tampered.tok
S verify tampered.tok --server "$URL"
[[ $rc == 1 ]] && has_err bad_signature
verdict "serve: verify --server of a tampered token: exit 1 (bad_signature)"

# Errors.
printf 'not-the-secret-%s\n' "$(openssl rand -hex 8)" > wrong.secret
WRONG=$(head -1 wrong.secret)
S issue --server "$URL" --client-id app --client-secret-file wrong.secret --scope read
[[ $rc == 6 ]] && has_err "error: invalid_client" && ! grep -qF "$WRONG" e o
verdict "serve: a wrong secret: exit 6, invalid_client, the secret not echoed"
S issue --server "http://localhost:$PORT" --client-id app --client-secret-file app.secret
[[ $rc == 5 ]] && has_err "names issuer"
verdict "serve: discovery refuses metadata naming another issuer (RFC 8414 §3.3): exit 5"
wk_before=$(count "$WK" "$LOG")
S issue --server "http://user:url-password-$PORT@127.0.0.1:$PORT" --client-id app --client-secret-file app.secret
[[ $rc == 2 ]] && has_err "carries a user name or password" && ! grep -qF "url-password-$PORT" e &&
  [[ $(count "$WK" "$LOG") == "$wk_before" ]]
verdict "serve: a --server URL with a password is refused (exit 2) before any request, the password not echoed"
S issue --profile nosuch --scope read
[[ $rc == 2 ]] && has_err nosuch
verdict "usage: --profile nosuch: exit 2"
t introspect --phantom some-token
[[ $rc == 2 ]]
verdict "usage: --phantom without a server: exit 2"
sed 's/client_secret_file: app.secret/client_secret: hunter2-hunter2/' p.yaml > secret-in-profile.yaml
t config check secret-in-profile.yaml
[[ $rc == 3 ]] && has_err client_secret_file
verdict "config check refuses a client_secret in a profile (exit 3)"

# JWKS caching and key rotation, on a fresh cache.
XDG_CACHE_HOME=$work/cache-batch S verify cc1.tok --server "$URL"
[[ $rc == 0 ]]
verdict "jwks: a second cache holds the JWKS from before the rotation (for verify --batch)"
export XDG_CACHE_HOME=$work/cache-jwks
j0=$(count /oauth/jwks "$LOG")
S verify cc1.tok --server "$URL"
j1=$(count /oauth/jwks "$LOG")
[[ $rc == 0 ]] && ((j1 == j0 + 1))
verdict "jwks: verify --server fetches the JWKS once"
S verify cc1.tok --server "$URL"
j2=$(count /oauth/jwks "$LOG")
[[ $rc == 0 ]] && ((j2 == j1))
verdict "jwks: a second verify uses the cached JWKS (no request)"
lines=$(wc -l < "$LOG")
S verify cc1.tok --server "$URL" --offline
[[ $rc == 0 && $(wc -l < "$LOG") == "$lines" ]]
verdict "jwks: verify --offline with a warm cache: exit 0, no request at all"
old_kid=$(claim cc1.tok .header.kid)
T keys rotate --force >/dev/null 2>&1
new_kid=$old_kid
for _ in $(seq 30); do  # serve looks at keystore.json at most once a second
  S issue "${APP[@]}" --scope read
  cp o rotated.tok
  new_kid=$(claim rotated.tok .header.kid)
  [[ -n $new_kid && $new_kid != "$old_kid" ]] && break
  sleep 0.2
done
[[ -n $new_kid && $new_kid != "$old_kid" ]]
verdict "jwks: tokctl serve signs with the new key after keys rotate (no restart)"
S verify rotated.tok --server "$URL"
j3=$(count /oauth/jwks "$LOG")
[[ $rc == 0 ]] && ((j3 == j2 + 1))
verdict "jwks: the new kid makes exactly one JWKS refetch, and verifies (exit 0)"
S verify rotated.tok --server "$URL"
[[ $rc == 0 ]] && (($(count /oauth/jwks "$LOG") == j3))
verdict "jwks: the refetched JWKS is cached (no further request)"
S sign --key stranger.jwk --iss "$URL" --sub mallory --exp +5m
cp o stranger.tok
S verify stranger.tok --server "$URL" -o json
[[ $rc == 1 && $(jq -r '[.errors[].code] | index("kid_not_found") != null' o) == true ]] &&
  (($(count /oauth/jwks "$LOG") == j3))
verdict "jwks: an unknown kid within 30 s of the refetch: no request, exit 1 kid_not_found"
jwks_cache=$(grep -lF "\"url\":\"$URL/oauth/jwks\"" cache-jwks/tokctl/http/*.json 2>/dev/null | head -1)
[[ -n $jwks_cache ]] && (($(jq -r '.refetched_at // 0' "$jwks_cache") > 0))
verdict "jwks: the refetch time is recorded in the cache file"
for _ in 1 2; do S issue "${APP[@]}" --scope read; out; done > rotated-batch.txt
{ cat cc1.tok; cat rotated.tok; } >> rotated-batch.txt
jb=$(count /oauth/jwks "$LOG")
XDG_CACHE_HOME=$work/cache-batch S verify --batch --server "$URL" < rotated-batch.txt
batch_cache=$(grep -lF "\"url\":\"$URL/oauth/jwks\"" cache-batch/tokctl/http/*.json 2>/dev/null | head -1)
[[ $rc == 0 && $(wc -l < o) == 4 && $(jq -sc 'map(.valid)' o) == '[true,true,true,true]' ]] &&
  (($(count /oauth/jwks "$LOG") == jb + 1)) && [[ -n $batch_cache ]] &&
  (($(jq -r '.refetched_at // 0' "$batch_cache") > 0))
verdict "jwks: verify --batch with new kids on a cache from before the rotation: exactly one JWKS refetch, all valid"
export XDG_CACHE_HOME=$work/cache-unknown
j4=$(count /oauth/jwks "$LOG")
S verify stranger.tok --server "$URL"
[[ $rc == 1 ]] && has_err kid_not_found && (($(count /oauth/jwks "$LOG") == j4 + 2))
verdict "jwks: an unknown kid on a fresh cache: one fetch and exactly one refetch, exit 1"
export XDG_CACHE_HOME=$work/cache-unknown-batch
j5=$(count /oauth/jwks "$LOG")
{ cat stranger.tok; cat rotated.tok; cat stranger.tok; } > stranger-batch.txt
S verify --batch --server "$URL" < stranger-batch.txt
[[ $rc == 1 && $(jq -sc 'map(.valid)' o) == '[false,true,false]' &&
   $(jq -sc 'map(.errors | map(.code) | index("kid_not_found") != null)' o) == '[true,false,true]' ]] &&
  (($(count /oauth/jwks "$LOG") == j5 + 2))
verdict "jwks: verify --batch with two unknown-kid tokens on a fresh cache: one fetch, one refetch for the run, exit 1"
export XDG_CACHE_HOME=$work/cache

# The access log: nothing secret in it.
leaks=""
for s in "$APP_SECRET" "$POST_SECRET" "$WRONG" "$REFRESH" "$NEW_REFRESH"; do
  [[ -n $s ]] && grep -qF "$s" "$LOG" && leaks+=" ${s:0:6}..."
done
grep -q 'eyJ' "$LOG" && leaks+=" a JWT"
[[ -z $leaks ]] && (($(count /oauth/token "$LOG") > 10)) && jq -e . "$LOG" >/dev/null
verdict "serve: the access log (one JSON object per request) holds no secret, refresh token or JWT${leaks:+ (found:$leaks)}"

# ===== 2. tokctl serve over HTTPS with mutual TLS ==============================================
mkcert() {  # mkcert NAME SUBJECT EXTENSIONS: a P-256 key and certificate signed by the test CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null &&
    printf '%s\n' "$3" > "$1.ext" &&
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=tokctl interop CA" \
  -keyout ca.key -out ca.pem 2>/dev/null || setup_failed "openssl: the test CA"
mkcert server "/CN=127.0.0.1" $'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth' || setup_failed "server cert"
mkcert client "/CN=mtls-client" $'subjectAltName=DNS:mtls-client.test\nextendedKeyUsage=clientAuth' ||
  setup_failed "client cert"
TPORT=$(free_port)
TURL=https://127.0.0.1:$TPORT
TLOG=$work/serve-tls.log
cat > t.yaml <<YAML
issuer: $TURL
scopes:
  - name: read
clients:
  mtls: {tls_client_auth: {san_dns: [mtls-client.test]}, token_endpoint_auth_method: tls_client_auth, grants: [client_credentials], scopes: [read], audiences: [api-a]}
YAML
TT() { "$TOKCTL" --config "$work/t.yaml" --keystore "$work/ks-tls" "$@"; }
TT keys add --alg ES256 -q > /dev/null || setup_failed "keys add (TLS)"
TAPP_SECRET=$(TT -o json clients add tapp --scope read --audience api-a | jq -r .client_secret)
printf '%s\n' "$TAPP_SECRET" > tapp.secret
if start "tokctl serve (HTTPS, mTLS)" ready-tls.json "$TLOG" \
     "$TOKCTL" --config "$work/t.yaml" --keystore "$work/ks-tls" serve --listen "127.0.0.1:$TPORT" \
     --tls-cert server.pem --tls-key server.key --client-ca ca.pem --jwks-max-age 1s; then
  export XDG_CACHE_HOME=$work/cache-tls
  t issue --server "$TURL" --client-id tapp --client-secret-file tapp.secret --scope read
  [[ $rc == 5 ]] && has_err certificate
  verdict "tls: without --cacert the server's certificate is not trusted: exit 5"
  t issue --server "$TURL" --cacert ca.pem --client-id mtls --cert client.pem --key client.key --scope read
  [[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.client_id) == mtls ]]
  verdict "tls: tls_client_auth with --cert/--key and --cacert (auth method implied by the certificate)"
  printf 'profiles:\n  mtls:\n    server: %s\n    client_id: mtls\n    cacert: ca.pem\n    cert: client.pem\n    key: client.key\n' \
    "$TURL" > tls-profile.yaml
  t --config "$work/tls-profile.yaml" issue --profile mtls --scope read
  [[ $rc == 0 ]] && is_jwt o && [[ $(claim o .payload.client_id) == mtls ]]
  verdict "tls: a profile's cacert, cert and key: tls_client_auth (implied by the profile's certificate)"
  t issue --server "$TURL" --cacert ca.pem --client-id mtls --auth-method tls_client_auth --scope read
  [[ $rc == 2 ]]
  verdict "tls: tls_client_auth without a certificate: exit 2"
  t issue --server "$TURL" --cacert ca.pem --client-id tapp --client-secret-file tapp.secret --scope read
  cp o tls.tok
  [[ $rc == 0 ]] && is_jwt tls.tok
  verdict "tls: client_secret_basic over HTTPS with --cacert"
  t issue --server "$TURL" --insecure --client-id tapp --client-secret-file tapp.secret --scope read
  [[ $rc == 0 ]] && is_jwt o && has_err "warning: --insecure"
  verdict "tls: --insecure works and prints a warning"
  t -q issue --server "$TURL" --insecure --client-id tapp --client-secret-file tapp.secret --scope read
  [[ $rc == 0 ]] && is_jwt o && has_err "warning: --insecure"
  verdict "tls: -q does not silence the --insecure warning (a security warning)"
  t verify tls.tok --server "$TURL" --cacert ca.pem
  [[ $rc == 0 ]]
  verdict "tls: verify --server over HTTPS with --cacert"
  sleep 1.2  # --jwks-max-age 1s: the cached JWKS is stale now
  t verify tls.tok --server "$TURL" --cacert ca.pem
  [[ $rc == 0 ]] && grep '"path":"/oauth/jwks"' "$TLOG" | tail -1 | grep -q '"status":304'
  verdict "tls: a stale cached JWKS is revalidated with its ETag (304)"
  t verify tls.tok --server "$TURL" --insecure-tls
  [[ $rc == 0 ]]
  verdict "tls: verify --insecure-tls"
  export XDG_CACHE_HOME=$work/cache
fi

# ===== 3. node oidc-provider ====================================================================
OPORT=$(free_port)
OURL=http://127.0.0.1:$OPORT
OP_JWT_SECRET=op-jwt-$(openssl rand -hex 16)
OP_OPAQUE_SECRET=op-opaque-$(openssl rand -hex 16)
printf '%s' "$OP_JWT_SECRET" > op-jwt.secret
printf '%s' "$OP_OPAQUE_SECRET" > op-opaque.secret
clients=$(jq -nc --arg j "$OP_JWT_SECRET" --arg o "$OP_OPAQUE_SECRET" \
  '[{client_id: "op-jwt", client_secret: $j, format: "jwt"}, {client_id: "op-opaque", client_secret: $o, format: "opaque"}]')
if start "oidc-provider" op-ready.json op.log \
     node "$NODE_DIR/oidc_provider_server.mjs" "$OPORT" "$OURL" "$clients"; then
  export XDG_CACHE_HOME=$work/cache-op
  OPQ=(--server "$OURL" --client-id op-opaque --client-secret-file op-opaque.secret)
  t issue "${OPQ[@]}" --scope read
  cp o op-opaque.tok
  [[ $rc == 0 && -s op-opaque.tok ]] &&
    grep -lqF "\"url\":\"$OURL/.well-known/openid-configuration\"" cache-op/tokctl/http/*.json 2>/dev/null
  verdict "oidc-provider: discovery (openid-configuration) and client_credentials"
  t introspect "${OPQ[@]}" op-opaque.tok
  [[ $rc == 0 && $(jq -r .active o) == true && $(jq -r .client_id o) == op-opaque ]]
  verdict "oidc-provider: introspection of its token: active (exit 0)"
  t revoke "${OPQ[@]}" op-opaque.tok
  [[ $rc == 0 ]]
  verdict "oidc-provider: revocation (exit 0)"
  t introspect "${OPQ[@]}" op-opaque.tok
  [[ $rc == 1 && $(jq -r .active o) == false ]]
  verdict "oidc-provider: introspection after revocation: inactive (exit 1)"
  t issue --server "$OURL" --client-id op-jwt --client-secret-file op-jwt.secret --scope read
  cp o op.jwt
  t verify op.jwt --server "$OURL" --typ at+jwt
  [[ $rc == 0 ]]
  verdict "oidc-provider: verify --server of its JWT access token (JWKS by discovery, iss, typ)"
  tamper_jws op.jwt op-tampered.jwt
  t verify op-tampered.jwt --server "$OURL"
  [[ $rc == 1 ]]
  verdict "oidc-provider: verify --server of a tampered token: exit 1"
  t issue --server "$OURL" --client-id op-jwt --client-secret-file op-opaque.secret --scope read
  [[ $rc == 6 ]] && has_err invalid_client && ! grep -qF "$OP_OPAQUE_SECRET" e
  verdict "oidc-provider: a wrong secret: exit 6, invalid_client, the secret not echoed"
  export XDG_CACHE_HOME=$work/cache
fi

# ===== 4. error paths: the fault server and a closed port ======================================
export XDG_CACHE_HOME=$work/cache-fault
FAULT_SECRET=fault-secret-$(openssl rand -hex 8)
export TOKCTL_CLIENT_SECRET=$FAULT_SECRET
if start "fault server" fault-ready.json fault.log node "$NODE_DIR/fault_server.mjs" 0; then
  F=$(jq -r .url fault-ready.json)
  hits() { curl -sf "$F/stats" | jq -r --arg p "$1" '.requests[$p] // 0'; }
  conns() { curl -sf "$F/stats" | jq -r --arg p "$1" '.connections_by_path[$p] // 0'; }

  closed=$(free_port)
  t0=$(now_ms)
  t issue --server "http://127.0.0.1:$closed" --client-id x --scope read
  ms=$(($(now_ms) - t0))
  [[ $rc == 5 ]] && ((ms >= 600 && ms < 3000)) && has_err "Couldn't connect to server" && has_err "(after 3 attempts)"
  verdict "fault: connection refused: exit 5 in ${ms} ms, curl's reason, after 3 attempts (2 retries backing off 200+400 ms)"
  t issue --server "http://127.0.0.1:$closed" --client-id x --scope read --retries 0
  [[ $rc == 5 ]] && has_err "Couldn't connect to server" && ! has_err "attempts"
  verdict "fault: connection refused with --retries 0: one attempt, exit 5"
  t introspect --introspection-endpoint "$F/500/introspect" --client-id x tok
  [[ $rc == 5 && $(hits /500/introspect) == 3 ]]
  verdict "fault: 500 on introspection is retried (3 hits = 1 + the default 2 retries), then exit 5"
  t verify cc1.tok --jwks-url "$F/500/jwks" --timeout 5s
  [[ $rc == 5 && $(hits /500/jwks) == 3 ]]
  verdict "fault: 500 on a JWKS GET is retried (3 hits), then exit 5"
  t revoke --revocation-endpoint "$F/500/revoke" --client-id x --retries 1 tok
  [[ $rc == 5 && $(hits /500/revoke) == 2 ]]
  verdict "fault: 500 on revocation is retried (2 hits = 1 + --retries 1), then exit 5"
  t issue --token-endpoint "$F/500/token" --client-id x --retries 2 --scope read
  [[ $rc == 5 && $(hits /500/token) == 1 ]]
  verdict "fault: 500 on the token endpoint is not retried (1 hit), exit 5"
  t introspect --introspection-endpoint "$F/503-then-ok/2/introspect" --client-id x tok
  [[ $rc == 0 && $(jq -r .active o) == true && $(hits /503-then-ok/2/introspect) == 3 ]]
  verdict "fault: 503, 503, then 200 on introspection succeeds through the retries"
  t0=$(now_ms)
  t introspect --introspection-endpoint "$F/slow/introspect" --client-id x --timeout 1s --retries 0 tok
  ms=$(($(now_ms) - t0))
  [[ $rc == 5 ]] && ((ms < 4000)) && has_err "timed out"
  verdict "fault: --timeout 1s on a server that does not answer: exit 5 in ${ms} ms (curl: timed out)"
  t introspect --introspection-endpoint "$F/badjson/introspect" --client-id x tok
  [[ $rc == 5 ]]
  verdict "fault: invalid JSON from the introspection endpoint: exit 5"
  t issue --token-endpoint "$F/badjson/token" --client-id x --scope read
  [[ $rc == 5 ]]
  verdict "fault: invalid JSON from the token endpoint: exit 5"
  t introspect --introspection-endpoint "$F/huge/introspect" --client-id x tok
  [[ $rc == 5 ]] && has_err "larger than"
  verdict "fault: a 2 MiB response: exit 5 (larger than 1 MiB)"
  t verify cc1.tok --jwks-url "$F/huge/jwks"
  [[ $rc == 5 ]]
  verdict "fault: a 2 MiB JWKS: exit 5"
  t issue --token-endpoint "$F/oauth-error/token" --client-id x --scope read
  [[ $rc == 6 ]] && has_err "error: invalid_client: " && ! grep -qF "$FAULT_SECRET" e o
  verdict "fault: an OAuth error body: exit 6, 'invalid_client: description', the secret not echoed"
  t issue --server "$F/no-such-fault" --client-id x --scope read
  [[ $rc == 5 ]] && has_err "no server metadata"
  verdict "fault: no metadata at either well-known URL: exit 5"
  t introspect --token-endpoint "$F/token/x" --introspection-endpoint "$F/login-page/introspect" --client-id x tok
  [[ $rc == 5 ]] && has_err "not an RFC 7662 JSON object"
  verdict "fault: an HTML page from the introspection endpoint is a failure (exit 5), not an inactive token"
  t issue --token-endpoint "$F/no-such-fault/token" --client-id x --scope read
  [[ $rc == 5 ]] && has_err "not an OAuth error response"
  verdict "fault: a 404 without an OAuth error body: exit 5"
  t issue --token-endpoint "$F/token/ok" --client-id x --scope read
  [[ $rc == 0 && $(out) == fault-access-token ]]
  verdict "fault: --token-endpoint without discovery prints the access token"
  seq 20 | sed 's/^/token-/' > batch20.txt
  t introspect --introspection-endpoint "$F/introspect/batch" --client-id x --batch < batch20.txt
  [[ $rc == 0 && $(wc -l < o) == 20 && $(hits /introspect/batch) == 20 && $(conns /introspect/batch) == 1 ]]
  verdict "fault: introspect --batch of 20 tokens: 20 lines over 1 TCP connection"
  t verify cc1.tok --jwks-url "$F/introspect/jwks" --offline
  [[ $rc == 5 && $(hits /introspect/jwks) == 0 ]]
  verdict "fault: verify --offline with an empty cache: exit 5, no request"
  # curl's proxy conventions: http_proxy routes the request through the fault server (absolute
  # form), for a host that does not even resolve.
  http_proxy=$F t introspect --introspection-endpoint "http://as.proxy.invalid/introspect/via-proxy" --client-id x tok
  [[ $rc == 0 && $(hits /introspect/via-proxy) == 1 && $(curl -sf "$F/stats" | jq -r .proxied) == 1 ]]
  verdict "fault: http_proxy is honoured (the request went through the proxy in absolute form)"
fi
unset TOKCTL_CLIENT_SECRET

interop_summary remote-interop
