// The operator reads from the log which dependency failed and when it came back: one line each, naming
// Redis and where it is, not one line per reconnection attempt.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { createFleet, type Fleet } from '../../src/index.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';
import { recordingLogger, type Line } from '../helpers/recording-logger.js';

describe('Redis outage log lines', () => {
  let redis: TestRedis;
  let fleet: Fleet;
  const lines: Line[] = [];

  before(async () => {
    redis = await TestRedis.start();
    fleet = createFleet({
      server: () => new McpServer({ name: 'log-test', version: '1.0.0' }),
      redis: redis.url,
      keyPrefix: TestRedis.prefix(),
      logger: recordingLogger(lines),
    });
    const deadline = Date.now() + 10_000;
    while (!(await fleet.ready())) {
      if (Date.now() > deadline) throw new Error('fleet never became ready');
      await new Promise((r) => setTimeout(r, 25));
    }
  });
  after(async () => {
    await fleet?.close();
    await redis?.stop();
  });

  it('says once that Redis is unreachable (and where), and once that it reconnected', async () => {
    const where = `redis://127.0.0.1:${redis.port}/0`;
    const unreachable = () =>
      lines.filter((l) => l.level === 'warn' && l.msg.startsWith('Redis unreachable at'));
    const reconnected = () =>
      lines.filter((l) => l.level === 'info' && l.msg.startsWith('Redis reconnected'));
    assert.equal(unreachable().length, 0, 'no outage logged while Redis is up');

    await redis.kill();
    await waitFor('the outage line', () => unreachable().length > 0);
    assert.ok(unreachable()[0]!.msg.includes(where), unreachable()[0]!.msg);
    // ioredis retries every 50 ms to 2 s; every failed attempt stays out of the warn level.
    await waitFor('a few reconnection attempts', () => lines.filter((l) => l.level === 'debug').length >= 3);
    assert.equal(unreachable().length, 1, 'one line per outage, not per attempt');
    // The repeats of every part (heartbeat, subscriber) are debug while the outage is known.
    assert.deepEqual(
      lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg),
      [unreachable()[0]!.msg],
    );

    await redis.restart();
    await waitFor('the recovery line', () => reconnected().length > 0);
    assert.match(
      reconnected()[0]!.msg,
      new RegExp(`^Redis reconnected at ${where.replace(/[./]/g, '\\$&')} after \\d+\\.\\d s$`),
    );
    const deadline = Date.now() + 10_000;
    while (!(await fleet.ready())) {
      if (Date.now() > deadline) throw new Error('fleet did not recover');
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(unreachable().length, 1);
    assert.equal(reconnected().length, 1);
  });

  it('logs no outage when the fleet closes its own connection', async () => {
    const before = lines.length;
    await fleet.close();
    assert.deepEqual(
      lines.slice(before).filter((l) => l.msg.startsWith('Redis unreachable')),
      [],
    );
  });
});

describe("the caller's Redis client", () => {
  it('keeps no listener of a closed fleet (the client outlives it)', async () => {
    const redis = await TestRedis.start();
    const client = redis.client();
    try {
      const events = ['close', 'error', 'ready', 'end', 'reconnecting'];
      const counts = () => events.map((e) => client.listenerCount(e));
      const before = counts();
      const fleet = createFleet({
        server: () => new McpServer({ name: 'listeners', version: '1.0.0' }),
        redis: client,
        keyPrefix: TestRedis.prefix(),
      });
      await waitFor('the fleet to be ready', () => fleet.ready());
      assert.ok(client.listenerCount('close') > before[0]!, 'the fleet listens while it runs');
      await fleet.close();
      assert.deepEqual(counts(), before);
      assert.equal(await client.ping(), 'PONG', 'the client is still the caller’s, open');
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });
});

describe("the caller's lazy Redis client", () => {
  it('is connected by the fleet (a lazyConnect client connects on its first command)', async () => {
    const redis = await TestRedis.start();
    const client = new Redis(redis.url, { lazyConnect: true });
    const fleet = createFleet({
      server: () => new McpServer({ name: 'lazy', version: '1.0.0' }),
      redis: client,
      keyPrefix: TestRedis.prefix(),
      heartbeatMs: 600_000,
      instanceTtlMs: 1_800_000,
    });
    try {
      await waitFor('the fleet to be ready', () => fleet.ready(), 10_000);
      assert.equal(client.status, 'ready');
    } finally {
      await fleet.close();
      client.disconnect();
      await redis.stop();
    }
  });
});

describe('startup', () => {
  it('the first heartbeat waits for the command connection (the subscriber may connect first)', async () => {
    // A pass-through that holds the fleet's first connection (its command connection, opened by
    // createFleet) until the second one (the bus subscriber) has been answered a SUBSCRIBE. A beat
    // sent meanwhile would fail at once (no offline queue): the instance would log an outage that
    // never was and stay unlisted, so not ready, until the next beat, here ten minutes away.
    const redis = await TestRedis.start();
    const sockets: Socket[] = [];
    let releaseFirst!: () => void;
    const firstReleased = new Promise<void>((r) => (releaseFirst = r));
    let accepted = 0;
    const gate = createServer((client) => {
      const nth = ++accepted;
      const upstream = connect(redis.port, '127.0.0.1');
      sockets.push(client, upstream);
      const hold = nth === 1 ? firstReleased : Promise.resolve();
      client.on('data', (chunk) => void hold.then(() => upstream.write(chunk)));
      upstream.on('data', (chunk) => {
        client.write(chunk);
        if (nth === 2 && /subscribe/i.test(chunk.toString('latin1'))) releaseFirst();
      });
      for (const s of [client, upstream]) s.on('error', () => undefined); // closed by the test or Redis
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    const lines: Line[] = [];
    const fleet = createFleet({
      server: () => new McpServer({ name: 'startup', version: '1.0.0' }),
      redis: `redis://127.0.0.1:${(gate.address() as { port: number }).port}`,
      keyPrefix: TestRedis.prefix(),
      logger: recordingLogger(lines),
      heartbeatMs: 600_000,
      instanceTtlMs: 1_800_000,
    });
    try {
      await waitFor('the fleet to be ready', () => fleet.ready(), 10_000);
      assert.equal(accepted, 2, 'the command connection and the subscriber');
      assert.deepEqual(
        lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg),
        [],
        'no outage logged',
      );
      assert.deepEqual(
        lines.filter((l) => l.msg === 'instance heartbeat failed'),
        [],
        'the first heartbeat reached Redis',
      );
    } finally {
      await fleet.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => gate.close(() => r()));
      await redis.stop();
    }
  });
});
