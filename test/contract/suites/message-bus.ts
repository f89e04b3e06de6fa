import { afterEach, beforeEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BusPayload as BusMessage, MessageBus } from '../../../src/bus/message-bus.js';
import { waitFor as until } from '../../helpers/wait.js';
export { until };

/** A factory of buses that can all hear each other (one "network" per test). */
export type MakeBus = (onError?: (err: unknown) => void) => MessageBus;
export type MakeNetwork = () => MakeBus;

/** Collects what a started bus receives. */
export class Inbox {
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

/** The MessageBus contract; `makeNetwork` is called inside tests, after the suite's `before` hooks. */
export function messageBusContract(makeNetwork: MakeNetwork): void {
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
    // A last message to each: a stray one sent before it, on the same channel, would be ahead of it.
    await a.send('a', { t: 'last' });
    await a.send('b', { t: 'last' });
    assert.deepEqual(await inboxA.waitFor(1), [{ t: 'last' }]);
    assert.deepEqual(
      (await inboxB.waitFor(2)).map((m) => m.t),
      ['hello', 'last'],
    );
  });

  it('broadcasts to every instance, the sender included', async () => {
    const [a, inboxA] = await open('a');
    const [, inboxB] = await open('b');
    const [, inboxC] = await open('c');
    await a.broadcast({ t: 'drop', sessionId: 's1' });
    for (const inbox of [inboxA, inboxB, inboxC])
      assert.deepEqual(await inbox.waitFor(1), [{ t: 'drop', sessionId: 's1' }]);
  });

  it('delivers asynchronously, in the order sent, per channel', async () => {
    const [a] = await open('a');
    const [, inboxB] = await open('b');
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++)
      sends.push(i % 10 === 9 ? a.broadcast({ t: 'n', i }) : a.send('b', { t: 'n', i }));
    assert.equal(inboxB.messages.length, 0, 'nothing is delivered inside send');
    await Promise.all(sends);
    const got = (await inboxB.waitFor(200)).map((m) => m.i as number);
    // Direct messages in order, broadcasts in order; the two channels may interleave differently
    // (on a Cluster they are on different shards).
    assert.deepEqual(
      got.filter((i) => i % 10 !== 9),
      Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 10 !== 9),
    );
    assert.deepEqual(
      got.filter((i) => i % 10 === 9),
      Array.from({ length: 20 }, (_, i) => i * 10 + 9),
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
    await until('both delivered', () => seen.length >= 2, 5000);
    assert.deepEqual(
      seen.map((m) => m.t),
      ['boom', 'fine'],
    );
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /handler failed/);
  });

  it('stops receiving on close, idempotently', async () => {
    const [a, inboxA] = await open('a');
    const [b, inboxB] = await open('b');
    await b.close();
    await b.close();
    assert.equal(await a.send('b', { t: 'after-close' }), 0);
    await a.broadcast({ t: 'after-close' });
    // The sender receives its broadcast too: a delivery of it to b would have come with that one.
    assert.deepEqual(await inboxA.waitFor(1), [{ t: 'after-close' }]);
    assert.deepEqual(inboxB.messages, []);
  });

  it('refuses to start twice', async () => {
    const [a] = await open('a');
    await assert.rejects(a.start('a2', () => {}));
  });
}
