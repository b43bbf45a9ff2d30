// A misbehaving HTTP server for tokctl's remote-mode error paths (tests/interop/remote_run.sh),
// on node's built-in http module only.
//   node fault_server.mjs [PORT]        (default 0: any free port)
// Prints one JSON ready line on stdout ({"port":N,"url":"http://127.0.0.1:N"}) once listening on
// 127.0.0.1; SIGTERM/SIGINT stop it.
//
// The mode is the first path segment; the rest of the path is free, so a test gets fresh
// counters by adding its own suffix (/500/introspect-retries, /503-then-ok/2/a, ...):
//   /500/...            500, text/plain, every time
//   /503-then-ok/N/...  503 (text/plain) for the first N requests to this exact path, then a
//                       valid answer (as /introspect; N defaults to 1)
//   /slow/...           answers only after 30 s (a client with a shorter timeout gives up)
//   /badjson/...        200, application/json, body "not json"
//   /login-page/...     200, text/html (a login page where an API answer was expected)
//   /huge/...           200, application/json, a 2 MiB body
//   /oauth-error/...    400 {"error":"invalid_client","error_description":...}
//   /introspect/...     200 {"active":true,...} (RFC 7662)
//   /token/...          200 {"access_token":...,"token_type":"Bearer","expires_in":60}
//   /stats              GET: {"connections":N,"proxied":N,"requests":{PATH:N},"connections_by_path":{PATH:N}}
//                       where connections counts every TCP connection accepted, proxied the
//                       requests sent in absolute form (tokctl using this server as its proxy), requests the
//                       requests per exact path, and connections_by_path how many distinct TCP
//                       connections carried requests for each path (/stats itself not counted).
// Anything else is 404. Request bodies are read and discarded.
import http from 'node:http';

const requests = new Map();           // path -> number of requests
const socketsByPath = new Map();      // path -> Set of connection ids
let connections = 0;
let proxied = 0;                      // requests in absolute form (sent to us as a proxy)
const slowTimers = new Set();

function json(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function text(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const introspection = { active: true, client_id: 'fault', scope: 'read', sub: 'fault-sub', token_type: 'Bearer' };

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.url.startsWith('http://')) proxied += 1;
  const segments = path.split('/').filter(Boolean);
  const mode = segments[0] || '';
  if (path !== '/stats') {
    requests.set(path, (requests.get(path) || 0) + 1);
    if (!socketsByPath.has(path)) socketsByPath.set(path, new Set());
    socketsByPath.get(path).add(req.socket.connectionId);
  }
  const hits = requests.get(path) || 0;
  // Read (and drop) the body before answering, so keep-alive connections stay usable.
  req.resume();
  req.on('end', () => {
    switch (mode) {
      case 'stats':
        return json(res, 200, {
          connections,
          proxied,
          requests: Object.fromEntries(requests),
          connections_by_path: Object.fromEntries([...socketsByPath].map(([p, s]) => [p, s.size])),
        }, { 'Cache-Control': 'no-store' });
      case '500':
        return text(res, 500, 'internal failure (fault server)\n');
      case '503-then-ok': {
        const n = Number.parseInt(segments[1] || '1', 10);
        if (hits <= (Number.isNaN(n) ? 1 : n)) return text(res, 503, 'try again later (fault server)\n');
        return json(res, 200, introspection);
      }
      case 'slow': {
        const t = setTimeout(() => { slowTimers.delete(t); json(res, 200, introspection); }, 30000);
        slowTimers.add(t);
        return undefined;
      }
      case 'login-page':
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        return res.end('<html><body>Please log in</body></html>\n');
      case 'badjson':
        return json(res, 200, 'not json');
      case 'huge': {
        const pad = 'x'.repeat(2 * 1024 * 1024);
        return json(res, 200, `{"active":true,"pad":"${pad}"}`);
      }
      case 'oauth-error':
        return json(res, 400, { error: 'invalid_client', error_description: 'the fault server refuses this client' });
      case 'introspect':
        return json(res, 200, introspection);
      case 'token':
        return json(res, 200, { access_token: 'fault-access-token', token_type: 'Bearer', expires_in: 60 },
                    { 'Cache-Control': 'no-store' });
      default:
        return text(res, 404, 'no such fault\n');
    }
  });
});

server.keepAliveTimeout = 60000;
server.on('connection', (socket) => {
  connections += 1;
  socket.connectionId = connections;
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(JSON.stringify({ port, url: `http://127.0.0.1:${port}` }));
});

const stop = () => {
  for (const t of slowTimers) clearTimeout(t);
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
