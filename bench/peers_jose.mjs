// bench/peers_jose.mjs — the npm `jose` peer of bench/peers.sh (not meant to be run by hand).
//
//   node bench/peers_jose.mjs NODE_DIR --version
//       prints "jose VERSION (node VERSION)" and exits 0 if jose can be loaded from
//       NODE_DIR/node_modules (tests/interop/node, installed by `npm ci` there).
//   node bench/peers_jose.mjs NODE_DIR ALG JWK_FILE TOKENS_FILE NOW
//       imports JWK_FILE once (importJWK), reads TOKENS_FILE (one compact JWS a line), then
//       calls jwtVerify on each token in turn with algorithms [ALG] and currentDate = NOW
//       (epoch seconds), and prints one line: "valid=V tokens=N seconds=S", where S covers the
//       loop only (not node's start-up, the import of jose, reading the file or the key import).
//       The first rejection, if any, goes to stderr; the exit status is 0 only if V == N.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createSecretKey } from 'node:crypto';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [nodeDir, ...args] = process.argv.slice(2);
if (!nodeDir) {
    console.error('usage: peers_jose.mjs NODE_DIR (--version | ALG JWK_FILE TOKENS_FILE NOW)');
    process.exit(2);
}

// Resolve the package from NODE_DIR as that directory's own code would, then load its ESM
// build (what `import 'jose'` gives there).
let jose, pkg;
try {
    const req = createRequire(join(nodeDir, 'package.json'));
    const pkgPath = req.resolve('jose/package.json');
    pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
    const esm = pkg.exports?.['.']?.import ?? './dist/node/esm/index.js';
    jose = await import(pathToFileURL(join(dirname(pkgPath), esm)).href);
} catch (e) {
    console.error(`cannot load npm jose from ${nodeDir}/node_modules: ${e.message}`);
    process.exit(3);
}

if (args[0] === '--version') {
    console.log(`jose ${pkg.version} (node ${process.version})`);
    process.exit(0);
}

const [alg, jwkFile, tokensFile, nowArg] = args;
if (!alg || !jwkFile || !tokensFile || !/^[0-9]+$/.test(nowArg ?? '')) {
    console.error('usage: peers_jose.mjs NODE_DIR ALG JWK_FILE TOKENS_FILE NOW');
    process.exit(2);
}

const tokens = readFileSync(tokensFile, 'utf8').split('\n').filter((l) => l.length > 0);
let key = await jose.importJWK(JSON.parse(readFileSync(jwkFile, 'utf8')), alg);
// For "oct" keys importJWK returns the raw bytes, from which jwtVerify would build a KeyObject
// for every token; build it once here, as a long-running verifier would.
if (key instanceof Uint8Array) key = createSecretKey(key);
const options = { algorithms: [alg], currentDate: new Date(Number(nowArg) * 1000) };

let valid = 0;
let firstError = null;
const t0 = process.hrtime.bigint();
for (const token of tokens) {
    try {
        await jose.jwtVerify(token, key, options);
        valid++;
    } catch (e) {
        if (firstError === null) firstError = `${e.code ?? e.name}: ${e.message}`;
    }
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

console.log(`valid=${valid} tokens=${tokens.length} seconds=${seconds.toFixed(6)}`);
if (firstError !== null) console.error(`first rejection: ${firstError}`);
process.exit(valid === tokens.length ? 0 : 1);
