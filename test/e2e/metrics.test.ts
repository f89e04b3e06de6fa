// Prometheus metrics (the `metrics` option) in one process: what a scrape shows after real requests,
// embedded and with two fleets sharing one Redis.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import { createFleet, type Fleet } from '../../src/index.js';
import { newSessionId } from '../../src/session-id.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { initBody, rawPost } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
}

/** The value of the sample `name` whose labels are exactly `labels` in the text format, or undefined. */
async function sample(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '').split(',').filter(Boolean).sort().join(',');
    if (got === wanted) return Number(m[3]);
  }
  return undefined;
}

const call = (id: number) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'x' } },
  });

describe('metrics', () => {
  it('counts requests, errors and sessions of an embedded fleet, labelled without session ids', async () => {
    const registry = new Registry();
    const fleet: Fleet = createFleet({ server: (ctx) => buildDemoServer(ctx), metrics: registry });
    const server = createServer(fleet.handler);
    const url = await listen(server);
    const get = new AbortController();
    try {
      const init = await rawPost(url, initBody());
      assert.equal(init.status, 200);
      const sid = init.headers.get('mcp-session-id')!;
      const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });
      assert.equal((await rawPost(url, initialized, h)).status, 202);
      for (const id of [2, 3, 4]) assert.equal((await rawPost(url, call(id), h)).status, 200);
      const unknown = { ...h, 'mcp-session-id': newSessionId() };
      assert.equal((await rawPost(url, call(5), unknown)).status, 404);
      assert.equal((await rawPost(url, '{not json', h)).status, 400);
      assert.equal((await fetch(url, { method: 'PUT' })).status, 405);
      // A streaming answer is counted (and timed) when its head is sent, not when the stream ends.
      const stream = await fetch(url, {
        headers: { ...h, accept: 'text/event-stream' },
        signal: get.signal,
      });
      assert.equal(stream.status, 200);

      const post = { method: 'POST', path_kind: 'mcp' };
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', { ...post, status: '200' }), 4);
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', { ...post, status: '202' }), 1);
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', { ...post, status: '404' }), 1);
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', { ...post, status: '400' }), 1);
      const put = { method: 'PUT', path_kind: 'mcp', status: '405' };
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', put), 1);
      const getLabels = { method: 'GET', path_kind: 'mcp', status: '200' };
      assert.equal(await sample(registry, 'mcp_fleet_http_requests_total', getLabels), 1);
      assert.equal(await sample(registry, 'mcp_fleet_http_request_duration_seconds_count', post), 7);
      assert.equal(await sample(registry, 'mcp_fleet_errors_total', { code: 'SESSION_NOT_FOUND' }), 1);
      assert.equal(await sample(registry, 'mcp_fleet_errors_total', { code: 'PARSE_ERROR' }), 1);
      assert.equal(await sample(registry, 'mcp_fleet_errors_total', { code: 'METHOD_NOT_ALLOWED' }), 1);
      assert.equal(await sample(registry, 'mcp_fleet_store_errors_total'), 0);
      const created = { transport: 'streamable-http' };
      assert.equal(await sample(registry, 'mcp_fleet_sessions_created_total', created), 1);
      assert.equal(await sample(registry, 'mcp_fleet_live_sessions'), 1);
      assert.equal(await sample(registry, 'mcp_fleet_held_streams'), 1);
      assert.ok(!(await registry.metrics()).includes(sid), 'no label holds a session id');

      assert.throws(
        () => createFleet({ server: (ctx) => buildDemoServer(ctx), metrics: registry }),
        /already has mcp_fleet_http_requests_total; each fleet needs its own prom-client Registry/,
      );
    } finally {
      get.abort();
      await fleet.close();
      server.close();
    }
  });

  it('counts forwarded requests, ownership changes and hydrations (two fleets, one Redis)', async () => {
    const redis = await TestRedis.start();
    const keyPrefix = TestRedis.prefix();
    const registries = [new Registry(), new Registry()] as const;
    const fleets = registries.map((metrics, i) =>
      createFleet({
        server: (ctx) => buildDemoServer(ctx),
        redis: redis.url,
        keyPrefix,
        instanceId: `metrics-${i}`,
        metrics,
      }),
    );
    const servers = fleets.map((f) => createServer(f.handler));
    const [regA, regB] = registries;
    try {
      const [urlA, urlB] = await Promise.all(servers.map(listen));
      await until('both fleets ready', async () => (await fleets[0]!.ready()) && (await fleets[1]!.ready()));
      const sid = (await rawPost(urlA!, initBody())).headers.get('mcp-session-id')!;
      const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
      assert.equal((await rawPost(urlB!, call(2), h)).status, 200, 'request on B, forwarded to A');
      assert.equal((await rawPost(urlB!, call(3), h)).status, 200, 'again');
      assert.equal((await rawPost(urlA!, call(4), h)).status, 200, 'request on the owner');
      const unknown = { ...h, 'mcp-session-id': newSessionId() };
      assert.equal((await rawPost(urlB!, call(5), unknown)).status, 404);

      assert.equal(await sample(regB, 'mcp_fleet_routed_posts_total', { route: 'forwarded' }), 2);
      assert.equal(await sample(regA, 'mcp_fleet_routed_posts_total', { route: 'local' }), 1);
      assert.equal(await sample(regA, 'mcp_fleet_owned_sessions', {}), 1);
      assert.equal(await sample(regB, 'mcp_fleet_owned_sessions', {}), 0);
      assert.equal(await sample(regB, 'mcp_fleet_hydrations_total', { outcome: 'ok' }), undefined);
      const created = { transport: 'streamable-http' };
      assert.equal(await sample(regA, 'mcp_fleet_sessions_created_total', created), 1);
      assert.equal(await sample(regB, 'mcp_fleet_sessions_created_total', created), undefined);
      assert.equal(await sample(regA, 'mcp_fleet_ownership_changes_total', { reason: 'created' }), 1);
      const handled = { direction: 'in', type: 'handle' };
      assert.equal(await sample(regA, 'mcp_fleet_bus_messages_total', handled), 2);

      // A shuts down: it hands the session off; the next request on B makes B the owner.
      await fleets[0]!.close();
      assert.equal(await sample(regA, 'mcp_fleet_ownership_changes_total', { reason: 'drain' }), 1);
      assert.equal((await rawPost(urlB!, call(6), h)).status, 200, 'request on B after the handoff');
      assert.equal(await sample(regB, 'mcp_fleet_hydrations_total', { outcome: 'ok' }), 1);
      assert.equal(await sample(regB, 'mcp_fleet_ownership_changes_total', { reason: 'claimed' }), 1);
      assert.equal(await sample(regB, 'mcp_fleet_routed_posts_total', { route: 'local' }), 1);

      // DELETE on B is broadcast: B publishes it (and receives it itself).
      assert.equal((await fetch(urlB!, { method: 'DELETE', headers: h })).status, 200);
      const sent = { direction: 'out', type: 'deleted' };
      assert.equal(await sample(regB, 'mcp_fleet_bus_messages_total', sent), 1);
      await until(
        'the deletion received',
        async () =>
          (await sample(regB, 'mcp_fleet_bus_messages_total', { direction: 'in', type: 'deleted' })) === 1,
      );
    } finally {
      await Promise.all(fleets.map((f) => f.close()));
      for (const s of servers) s.close();
      await redis.stop();
    }
  });
});

/** Waits until `check` holds (polling an observable condition), at most `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
