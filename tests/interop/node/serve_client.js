// An unmodified openid-client (and node jose) against `tokctl serve`: discovery,
// client_credentials, JWKS verification, introspection, refresh, token exchange, DPoP-bound tokens
// (RFC 9449, with openid-client's own proofs), revocation and an invalid_client refusal.
// Driven by tests/interop/serve_run.sh.
//   node serve_client.js URL CLIENT_ID CLIENT_SECRET REFRESH_TOKEN
// Prints one "ok NAME" or "FAIL NAME: why" line per check; exit 1 when anything failed.
'use strict';
const { Issuer, errors } = require('openid-client');
const jose = require('jose');
const crypto = require('crypto');

const [url, clientId, clientSecret, refreshToken] = process.argv.slice(2);
let failed = 0;
const ok = (name) => console.log(`ok   ${name}`);
const fail = (name, why) => { failed += 1; console.log(`FAIL ${name}: ${why}`); };
async function check(name, fn) {
  try { await fn(); ok(name); } catch (e) { fail(name, e && e.message ? e.message : String(e)); }
}
function assert(cond, why) { if (!cond) throw new Error(why); }

(async () => {
  let issuer, client, access;
  await check('openid-client discovers the server (RFC 8414 / OIDC discovery)', async () => {
    issuer = await Issuer.discover(url);
    assert(issuer.issuer === url, `issuer ${issuer.issuer}`);
    assert(issuer.token_endpoint === `${url}/oauth/token`, `token_endpoint ${issuer.token_endpoint}`);
    client = new issuer.Client({ client_id: clientId, client_secret: clientSecret,
                                 token_endpoint_auth_method: 'client_secret_basic' });
  });
  if (!client) process.exit(1);
  await check('client_credentials grant', async () => {
    const set = await client.grant({ grant_type: 'client_credentials', scope: 'read' });
    assert(set.token_type === 'Bearer', `token_type ${set.token_type}`);
    assert(set.expires_in > 0, 'no expires_in');
    access = set.access_token;
  });
  await check('node jose verifies the access token with the remote JWKS', async () => {
    const jwks = jose.createRemoteJWKSet(new URL(issuer.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(access, jwks, { issuer: url, typ: 'at+jwt' });
    assert(protectedHeader.alg === 'ES256', protectedHeader.alg);
    assert(payload.client_id === clientId, `client_id ${payload.client_id}`);
  });
  await check('introspection says active', async () => {
    const r = await client.introspect(access);
    assert(r.active === true, JSON.stringify(r));
    assert(r.client_id === clientId, JSON.stringify(r));
  });
  await check('refresh_token grant (rotation)', async () => {
    const set = await client.refresh(refreshToken);
    assert(set.access_token, 'no access_token');
    assert(set.refresh_token && set.refresh_token !== refreshToken, 'the refresh token was not rotated');
  });
  await check('a reused refresh token is invalid_grant', async () => {
    try { await client.refresh(refreshToken); } catch (e) {
      assert(e instanceof errors.OPError && e.error === 'invalid_grant', `${e.error || e.message}`);
      return;
    }
    throw new Error('the reuse was accepted');
  });
  await check('token exchange (RFC 8693)', async () => {
    const set = await client.grant({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: access,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: 'api-b',
      scope: 'read',
    });
    assert(set.issued_token_type && set.issued_token_type.startsWith('urn:ietf:params:oauth:token-type:'), 'issued_token_type');
    const claims = jose.decodeJwt(set.access_token);
    assert(claims.aud === 'api-b', `aud ${claims.aud}`);
    assert(claims.act && claims.act.sub === clientId, `act ${JSON.stringify(claims.act)}`);
  });
  await check('the metadata offers DPoP proofs with ES256 and EdDSA, never HS256 (RFC 9449 §5.1)', async () => {
    const algs = issuer.dpop_signing_alg_values_supported || [];
    assert(algs.includes('ES256') && algs.includes('EdDSA') && !algs.includes('HS256'), JSON.stringify(algs));
  });
  for (const [name, type, options] of [['a P-256 (ES256)', 'ec', { namedCurve: 'P-256' }], ['an Ed25519 (EdDSA)', 'ed25519', {}]]) {
    await check(`DPoP (RFC 9449) with ${name} key: token_type DPoP, cnf.jkt in the token and its introspection`, async () => {
      const { privateKey, publicKey } = crypto.generateKeyPairSync(type, options);
      const set = await client.grant({ grant_type: 'client_credentials', scope: 'read' }, { DPoP: privateKey });
      assert(set.token_type === 'DPoP', `token_type ${set.token_type}`);
      const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(publicKey));
      const claims = jose.decodeJwt(set.access_token);
      assert(claims.cnf && claims.cnf.jkt === jkt, `cnf ${JSON.stringify(claims.cnf)}, want ${jkt}`);
      const r = await client.introspect(set.access_token);
      assert(r.active === true && r.token_type === 'DPoP' && r.cnf && r.cnf.jkt === jkt, JSON.stringify(r));
    });
  }
  await check('a DPoP proof made for another server is invalid_dpop_proof', async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = await jose.exportJWK(publicKey);
    const proof = await new jose.SignJWT({ htm: 'POST', htu: 'https://elsewhere.test/oauth/token', jti: crypto.randomUUID() })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(privateKey);
    const res = await fetch(issuer.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', DPoP: proof,
                 authorization: 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64') },
      body: 'grant_type=client_credentials&scope=read',
    });
    const body = await res.json();
    assert(res.status === 400 && body.error === 'invalid_dpop_proof', `${res.status} ${JSON.stringify(body)}`);
  });
  await check('revocation, then introspection says inactive', async () => {
    await client.revoke(access, 'access_token');
    const r = await client.introspect(access);
    assert(r.active === false, JSON.stringify(r));
  });
  await check('a wrong secret is invalid_client', async () => {
    const bad = new issuer.Client({ client_id: clientId, client_secret: 'wrong', token_endpoint_auth_method: 'client_secret_basic' });
    try { await bad.grant({ grant_type: 'client_credentials' }); } catch (e) {
      assert(e instanceof errors.OPError && e.error === 'invalid_client', `${e.error || e.message}`);
      return;
    }
    throw new Error('a wrong secret was accepted');
  });
  process.exit(failed ? 1 : 0);
})();
