import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { MemoryBus, MemoryBusHub } from '../../src/bus/memory-bus.js';
import type { BusPayload as BusMessage, MessageBus } from '../../src/bus/message-bus.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { FleetError } from '../../src/errors.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis-server.js';

/** A factory of buses that can all hear each other (one "network" per test). */
type MakeBus = (onError?: (err: unknown) => void) => MessageBus;
type MakeNetwork = () => MakeBus;

/** Collects what a started bus receives. */
class Inbox {
  readonly messages: BusMessage[] = [];
  private waiters: Array<() => void> = [];

  readonly receive = (m: unknown): void => {
    this.messages.push(m as BusMessage);
    for (const w of this.waiters.splice(0)) w();
  };

  /** Resolves once `n` messages arrived; rejects after `ms`. */
  async waitFor(n: number, ms = 5000): Promise<BusMessage[]> {
    const deadline = Date.now() + ms;
    while (this.messages.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} messages, got ${this.messages.length}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(left)]);
    }
    return this.messages;
  }
}

/** Polls `check` every 10 ms until it holds; fails after `ms`. */
async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await sleep(10);
  }
}

/** Lets in-flight deliveries land, to check that nothing more arrives. */
const settle = () => sleep(100);

/** The MessageBus contract; `makeNetwork` is called inside tests, after the suite's `before` hooks. */
function contract(makeNetwork: MakeNetwork): void {
  const opened: MessageBus[] = [];
  let makeBus: MakeBus;
  const open = async (instanceId: string, onError?: (err: unknown) => void): Promise<[MessageBus, Inbox]> => {
    const bus = makeBus(onError);
    opened.push(bus);
    const inbox = new Inbox();
    await bus.start(instanceId, inbox.receive);
    return [bus, inbox];
  };
  beforeEach(() => {
    makeBus = makeNetwork();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
  });

  it('sends to one instance and reports the receiver count', async () => {
    const [a, inboxA] = await open('a');
    const [, inboxB] = await open('b');
    assert.equal(await a.send('b', { t: 'hello', n: 1, nested: { ok: true } }), 1);
    assert.deepEqual(await inboxB.waitFor(1), [{ t: 'hello', n: 1, nested: { ok: true } }]);
    assert.equal(await a.send('nobody', { t: 'lost' }), 0);
    await settle();
    assert.deepEqual(inboxA.messages, []);
    assert.equal(inboxB.messages.length, 1);
  });

  it('broadcasts to every instance, the sender included', async () => {
    const [a, inboxA] = await open('a');
    const [, inboxB] = await open('b');
    const [, inboxC] = await open('c');
    await a.broadcast({ t: 'drop', sessionId: 's1' });
    for (const inbox of [inboxA, inboxB, inboxC])
      assert.deepEqual(await inbox.waitFor(1), [{ t: 'drop', sessionId: 's1' }]);
  });

  it('delivers asynchronously, in the order sent, across send and broadcast', async () => {
    const [a] = await open('a');
    const [, inboxB] = await open('b');
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++)
      sends.push(i % 10 === 9 ? a.broadcast({ t: 'n', i }) : a.send('b', { t: 'n', i }));
    assert.equal(inboxB.messages.length, 0, 'nothing is delivered inside send');
    await Promise.all(sends);
    const got = await inboxB.waitFor(200);
    assert.deepEqual(
      got.map((m) => m.i),
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it('copies messages: the receiver never shares the sender object', async () => {
    const [a] = await open('a');
    const [, inboxB] = await open('b');
    const message = { t: 'obj', list: [1] };
    await a.send('b', message);
    message.list.push(2);
    const [got] = await inboxB.waitFor(1);
    assert.deepEqual(got, { t: 'obj', list: [1] });
  });

  it('reports a throwing handler to onError and keeps delivering', async () => {
    const errors: unknown[] = [];
    const bus = makeBus((err) => errors.push(err));
    opened.push(bus);
    const seen: BusMessage[] = [];
    await bus.start('b', (value) => {
      const m = value as BusMessage;
      seen.push(m);
      if (m.t === 'boom') throw new Error('handler failed');
    });
    const [a] = await open('a');
    await a.send('b', { t: 'boom' });
    await a.send('b', { t: 'fine' });
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await sleep(10);
    assert.deepEqual(
      seen.map((m) => m.t),
      ['boom', 'fine'],
    );
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /handler failed/);
  });

  it('stops receiving on close, idempotently', async () => {
    const [a] = await open('a');
    const [b, inboxB] = await open('b');
    await b.close();
    await b.close();
    assert.equal(await a.send('b', { t: 'after-close' }), 0);
    await a.broadcast({ t: 'after-close' });
    await settle();
    assert.deepEqual(inboxB.messages, []);
  });

  it('refuses to start twice', async () => {
    const [a] = await open('a');
    await assert.rejects(a.start('a2', () => {}));
  });
}

describe('MemoryBus', () => {
  contract(() => {
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
  contract(() => {
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
