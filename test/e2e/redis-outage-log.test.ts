// The operator reads from the log which dependency failed and when it came back: one line each, naming
// Redis and where it is, not one line per reconnection attempt.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
