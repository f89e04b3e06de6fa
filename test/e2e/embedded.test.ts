// The embedded default (no Redis) in one process: a bounded live-session cache whose eviction is not
// deletion, and the handler as Express middleware (with and without a body parser in front).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import express from 'express';
import { createFleet, type Fleet } from '../../src/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('embedded fleet', () => {
  it('evicts live copies beyond maxLiveSessions without ending the sessions', async () => {
    let built = 0;
    const fleet: Fleet = createFleet({
      server: (ctx) => {
        built++;
        return buildDemoServer(ctx);
      },
      maxLiveSessions: 2,
    });
    const server = createServer(fleet.handler);
    const base = await listen(server);
    try {
      const clients = await Promise.all([1, 2, 3, 4].map(() => connectClient(base)));
      assert.ok((await fleet.health()).liveSessions <= 2, 'the cache is bounded');
      for (const [i, { client }] of clients.entries()) {
        await client.callTool({ name: 'increment', arguments: { by: i + 1 } });
      }
      for (const [i, { client }] of clients.entries()) {
        const v = JSON.parse(textOf(await client.callTool({ name: 'increment', arguments: { by: 0 } })));
        assert.equal(v.count, i + 1, 'session data survived eviction of the live copy');
      }
      assert.ok(built > 4, `evicted sessions were hydrated again (built ${built})`);
      assert.equal((await fleet.health()).sessions, 4);
      await Promise.all(clients.map(({ client }) => client.close()));
    } finally {
      await fleet.close();
      server.close();
    }
  });

  for (const bodyParser of [false, true]) {
    it(`works as Express middleware${bodyParser ? ' behind express.json()' : ''}; other paths reach next()`, async () => {
      const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx) });
      const app = express();
      if (bodyParser) app.use(express.json());
      app.use(fleet.handler);
      app.get('/hello', (_req, res) => {
        res.send('next() reached');
      });
      const server = createServer(app);
      const base = await listen(server);
      try {
        const { client } = await connectClient(base);
        assert.equal(
          textOf(await client.callTool({ name: 'echo', arguments: { text: 'via express' } })),
          'via express',
        );
        assert.equal(await (await fetch(`${base}/hello`)).text(), 'next() reached');
        await client.close();
      } finally {
        await fleet.close();
        server.close();
      }
    });
  }
});
