// The server side of bench/ab.ts: the demo server on one build of the library (argv: the build's
// index.js, the mode), on BENCH_REDIS_URL; answers `cpu` and `stop` over IPC like server-child.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Fleet, FleetOptions, SessionContext } from '../../src/index.js';
import { buildDemoServer } from '../../test/fixtures/demo-server.js';
const [lib, mode] = process.argv.slice(2) as [string, string];
const { createFleet } = (await import(lib)) as { createFleet: (o: FleetOptions) => Fleet };
const fleet = createFleet({
  server: (ctx: SessionContext) => buildDemoServer(ctx),
  redis: process.env.BENCH_REDIS_URL,
  keyPrefix: process.env.BENCH_KEY_PREFIX,
  jsonResponse: mode === 'json',
  rebalance: false,
});
while (!(await fleet.ready())) await new Promise((r) => setTimeout(r, 20));
const server = http.createServer((req, res) => fleet.handler(req, res));
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
process.on('message', (m: { type: 'cpu' | 'stop' }) => {
  if (m.type === 'cpu') {
    const u = process.cpuUsage();
    process.send!({ type: 'cpu', micros: u.user + u.system });
  }
  if (m.type === 'stop') void fleet.close().then(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready', port: (server.address() as AddressInfo).port });
