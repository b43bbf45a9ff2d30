// An unmodified node oidc-provider (panva, pinned in package.json) configured for the flows
// tokctl serve is compared on: client_credentials (an ES256 JWT access token for one client, an
// opaque one for the other) and RFC 7662 introspection, plus revocation and JWKS. A peer for
// bench/serve.sh (side by side) and for tests that need an OAuth server tokctl did not write.
//   node oidc_provider_server.mjs PORT ISSUER CLIENTS_JSON
// CLIENTS_JSON: [{"client_id":…,"client_secret":…,"format":"jwt"|"opaque"}, …]
// Prints one JSON ready line on stdout ({"issuer","listen","token_endpoint",
// "introspection_endpoint","jwks_uri"}) once listening; SIGTERM/SIGINT stop it.
// Storage is oidc-provider's default in-memory adapter: nothing is written anywhere, which favours
// it against tokctl serve's durable SQLite store.
import Provider from 'oidc-provider';
import * as jose from 'jose';

const [portArg, issuer, clientsJson] = process.argv.slice(2);
if (!portArg || !issuer || !clientsJson) {
  console.error('usage: node oidc_provider_server.mjs PORT ISSUER CLIENTS_JSON');
  process.exit(2);
}
const clients = JSON.parse(clientsJson);
const jwtClients = new Set(clients.filter((c) => c.format === 'jwt').map((c) => c.client_id));
const resource = `${issuer}/api`;

const { privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',  // the only key is ES256
    scope: 'read',
  })),
  jwks: { keys: [jwk] },
  cookies: { keys: [Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url')] },
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // JWT access tokens come from resource indicators (RFC 8707): the JWT client's tokens are for
    // a resource server whose format is 'jwt', signed ES256; the other client's stay opaque.
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (client && jwtClients.has(client.clientId) ? resource : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: resource,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (ctx, err) => console.error(`server_error: ${err && err.message}`));

const server = provider.listen(Number(portArg), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({
    issuer,
    listen: `127.0.0.1:${port}`,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    jwks_uri: `${issuer}/jwks`,
  }));
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
