import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { MemoryBus, MemoryBusHub } from '../../src/bus/memory-bus.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { FleetError } from '../../src/errors.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis-server.js';
import { Inbox, until, messageBusContract } from './suites/message-bus.js';

describe('MemoryBus', () => {
  messageBusContract(() => {
    const hub = new MemoryBusHub();
    return (onError) => new MemoryBus(hub, { onError });
  });

  it('is up between start and close', async () => {
    const bus = new MemoryBus(new MemoryBusHub());
    assert.equal(bus.isUp(), false);
    await bus.start('a', () => {});
    assert.equal(bus.isUp(), true);
    await bus.close();
    assert.equal(bus.isUp(), false);
  });

  it('keeps separate hubs apart', async () => {
    const a = new MemoryBus(new MemoryBusHub());
    const b = new MemoryBus(new MemoryBusHub());
    await b.start('b', () => assert.fail('crossed hubs'));
    assert.equal(await a.send('b', { t: 'x' }), 0);
    await a.close();
    await b.close();
  });
});

describe('RedisBus', () => {
  let server: TestRedis;
  let client: Redis;
  let keys: RedisKeys;

  before(async () => {
    server = await TestRedis.start();
    client = server.client();
  });
  after(async () => {
    client.disconnect();
    await server.stop();
  });
  beforeEach(() => {
    keys = new RedisKeys(TestRedis.prefix());
  });

  // All buses of a test share one command client, as the instances of one process would not —
  // but the channels, not the connection, are what the contract is about.
  messageBusContract(() => {
    const networkKeys = keys;
    return (onError) => new RedisBus(client, networkKeys, { onError });
  });

  it('reports malformed messages to onError and never throws', async () => {
    const errors: unknown[] = [];
    const bus = new RedisBus(client, keys, { onError: (err) => errors.push(err) });
    const inbox = new Inbox();
    await bus.start('b', inbox.receive);
    try {
      await client.publish(keys.instanceChannel('b'), 'not json');
      await client.publish(keys.instanceChannel('b'), '{"no":"type"}');
      await client.publish(keys.broadcastChannel(), '[1,2]');
      await client.publish(keys.instanceChannel('b'), JSON.stringify({ t: 'ok' }));
      assert.deepEqual(await inbox.waitFor(1), [{ t: 'ok' }]);
      assert.equal(errors.length, 3);
      for (const err of errors) assert.match(String(err), /Malformed message/);
    } finally {
      await bus.close();
    }
  });

  it('closes only the subscriber connection it opened', async () => {
    const bus = new RedisBus(client, keys);
    await bus.start('b', () => {});
    const before = await client.client('LIST');
    await bus.close();
    assert.equal(await client.ping(), 'PONG', 'the caller’s client stays open');
    const after = await client.client('LIST');
    assert.equal(String(after).trim().split('\n').length, String(before).trim().split('\n').length - 1);
  });

  it('flows again after the subscriber connection is killed (CLIENT KILL TYPE pubsub)', async () => {
    const bus = new RedisBus(client, keys);
    const inbox = new Inbox();
    await bus.start('b', inbox.receive);
    const sender = new RedisBus(client, keys);
    try {
      assert.equal(await sender.send('b', { t: 'before' }), 1);
      await inbox.waitFor(1);
      const killed = await client.client('KILL', 'TYPE', 'pubsub');
      assert.ok(Number(killed) >= 1, 'a subscriber connection was killed');
      // ioredis reconnects and resubscribes by itself; poll until the channel has a receiver again.
      const deadline = Date.now() + 10_000;
      while ((await sender.send('b', { t: 'probe' })) === 0) {
        assert.ok(Date.now() < deadline, 'resubscribed within 10 s');
        await sleep(50);
      }
      assert.equal(await sender.send('b', { t: 'after' }), 1);
      await sender.broadcast({ t: 'after-broadcast' });
      const deadline2 = Date.now() + 5000;
      while (!inbox.messages.some((m) => m.t === 'after-broadcast')) {
        assert.ok(Date.now() < deadline2, 'broadcast arrives after the reconnect');
        await sleep(10);
      }
      const after = inbox.messages.map((m) => m.t).filter((t) => t !== 'probe');
      assert.deepEqual(after, ['before', 'after', 'after-broadcast']);
    } finally {
      await sender.close();
      await bus.close();
    }
  });

  it('is down while the subscriber reconnects after CLIENT KILL TYPE pubsub, and up once resubscribed', async () => {
    // A slow reconnect (inherited by the subscriber) makes the down window long enough to see.
    const slow = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 400 });
    const bus = new RedisBus(slow, keys);
    const inbox = new Inbox();
    try {
      assert.equal(bus.isUp(), false, 'not up before start');
      await bus.start('b', inbox.receive);
      assert.equal(bus.isUp(), true);
      assert.ok(Number(await client.client('KILL', 'TYPE', 'pubsub')) >= 1);
      await until('down after the kill', () => !bus.isUp(), 2000);
      await until('up again', () => bus.isUp(), 5000);
      // Up means subscribed now: the channel has its receiver at once, no polling needed.
      assert.equal(await client.publish(keys.instanceChannel('b'), JSON.stringify({ t: 'after' })), 1);
      await client.publish(keys.broadcastChannel(), JSON.stringify({ t: 'after-broadcast' }));
      assert.deepEqual(
        (await inbox.waitFor(2)).map((m) => m.t),
        ['after', 'after-broadcast'],
      );
    } finally {
      await bus.close();
      slow.disconnect();
    }
    assert.equal(bus.isUp(), false, 'not up after close');
  });

  describe('with Redis down at start', () => {
    let down: TestRedis;
    let downClient: Redis;
    before(async () => {
      down = await TestRedis.start();
      await down.kill();
      // Like createFleet's own client: no offline queue, one retry per request.
      downClient = new Redis(down.port, '127.0.0.1', {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: () => 100,
      });
      downClient.on('error', () => {}); // connection refused until the server is restarted
    });
    after(async () => {
      downClient.disconnect();
      await down.stop();
    });

    it('close() ends a start() that waits for Redis, promptly', async () => {
      const bus = new RedisBus(downClient, keys);
      const started = bus.start('b', () => {});
      const outcome = started.then(
        () => 'resolved',
        () => 'rejected',
      );
      await sleep(300);
      assert.equal(bus.isUp(), false);
      const t0 = Date.now();
      await bus.close();
      assert.ok(Date.now() - t0 < 1000, `close took ${Date.now() - t0} ms`);
      assert.equal(await outcome, 'rejected');
      assert.equal(bus.isUp(), false);
    });

    it('start() waits while Redis is down and subscribes once it is back', async () => {
      const bus = new RedisBus(downClient, keys);
      const inbox = new Inbox();
      let settled = false;
      const started = bus.start('b', inbox.receive).finally(() => (settled = true));
      try {
        // Longer than several reconnect attempts and the command timeout: still waiting, not failed.
        await sleep(2500);
        assert.equal(settled, false, 'start() neither resolved nor rejected while Redis is down');
        assert.equal(bus.isUp(), false);
        await down.restart();
        await Promise.race([
          started,
          sleep(5000).then(() => assert.fail('not subscribed within 5 s of Redis coming back')),
        ]);
        assert.equal(bus.isUp(), true);
        await until('command client reconnected', () => downClient.status === 'ready', 5000);
        assert.equal(await bus.send('b', { t: 'hello' }), 1);
        assert.deepEqual(await inbox.waitFor(1), [{ t: 'hello' }]);
      } finally {
        await bus.close();
        await started.catch(() => {});
      }
    });
  });

  it('fails send fast with STORE_UNAVAILABLE while Redis is frozen', async () => {
    const bus = new RedisBus(client, keys, { commandTimeoutMs: 500 });
    server.pause();
    try {
      const started = Date.now();
      await assert.rejects(
        bus.send('b', { t: 'x' }),
        (err: unknown) => err instanceof FleetError && err.code === 'STORE_UNAVAILABLE',
      );
      assert.ok(Date.now() - started < 3000);
    } finally {
      server.resume();
    }
    await bus.close();
  });
});
