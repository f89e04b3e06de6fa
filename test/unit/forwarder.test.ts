// Forwarding a session's messages to its owner, with an injected clock: acknowledged, dead (nobody
// subscribed), frozen (no acknowledgement, heartbeat expired), a lost message (resent), a subscriber
// that reconnects (not dead), and the watch of streams produced elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBus, MemoryBusHub } from '../../src/bus/memory-bus.js';
import { decodeBusMessage, type BusMessage, type FleetBus } from '../../src/bus/protocol.js';
import { Ownership } from '../../src/ownership/ownership.js';
import { Forwarder, type ForwardOutcome, type ForwardRequest } from '../../src/session/forwarder.js';
import { MemoryInstanceRegistry } from '../../src/store/memory-instance-registry.js';
import { MemorySessionStore } from '../../src/store/memory-session-store.js';
import { ManualClock, settle } from '../helpers/manual-clock.js';

const HEARTBEAT = 500;
const TTL = 2000;
const ACK = 1000;

const request: ForwardRequest = {
  sid: 'session-1',
  seen: { owner: 'owner', epoch: 1 },
  claim: false,
  principal: 'alice',
  messages: [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }],
  headers: {},
};

/** A fake instance on the memory bus that answers as the test says, and beats while it "runs". */
class FakeInstance {
  readonly received: BusMessage[] = [];
  answer: (m: BusMessage) => BusMessage | undefined = () => undefined;
  bus: FleetBus;
  readonly ownership: Ownership;

  constructor(
    readonly id: string,
    private readonly hub: MemoryBusHub,
    clock: ManualClock,
    instances: MemoryInstanceRegistry,
    store: MemorySessionStore,
  ) {
    this.bus = new MemoryBus(hub) as FleetBus;
    this.ownership = new Ownership({
      instanceId: id,
      store,
      instances,
      clock,
      heartbeatMs: HEARTBEAT,
      instanceTtlMs: TTL,
      draining: () => false,
      subscribed: () => this.bus.isUp(),
      resubscribeSettleMs: TTL * 2,
      onLost: () => {},
      onTick: () => {},
      onError: () => {},
    });
  }

  async start(): Promise<void> {
    await this.subscribe();
    await this.ownership.start();
  }

  /** The subscriber connection is lost: messages to this instance reach nobody until {@link subscribe}. */
  async unsubscribe(): Promise<void> {
    await this.bus.close();
    this.bus = new MemoryBus(this.hub) as FleetBus;
  }

  /** (Re)subscribes this instance's channel on the bus. */
  async subscribe(): Promise<void> {
    await this.bus.start(this.id, (value) => {
      const m = decodeBusMessage(value);
      if (m instanceof Error) throw m;
      this.received.push(m);
      const reply = this.answer(m);
      const from = (m as { from?: string }).from;
      if (reply && from) void this.bus.send(from, reply);
    });
  }

  /** The process dies and its heartbeat record expires: no subscriber, no liveness. */
  async kill(): Promise<void> {
    await this.unsubscribe();
    await this.ownership.close();
  }
}

function setup() {
  const clock = new ManualClock();
  const hub = new MemoryBusHub();
  const instances = new MemoryInstanceRegistry({ now: () => clock.now() });
  const store = new MemorySessionStore(
    { idleMs: 60_000, maxLifetimeMs: 600_000 },
    { now: () => clock.now() },
  );
  const me = new FakeInstance('me', hub, clock, instances, store);
  const forwarder = new Forwarder({
    instanceId: 'me',
    bus: me.bus,
    clock,
    alive: (ids) => me.ownership.alive(ids),
    confirmGone: (id) => me.ownership.confirmGone(id),
    ackTimeoutMs: ACK,
    maxWaitMs: 10_000,
    onError: () => {},
  });
  me.answer = (m) => {
    if (m.t === 'handled') forwarder.onHandled(m);
    if (m.t === 'pong') forwarder.onPong(m);
    return undefined;
  };
  const owner = new FakeInstance('owner', hub, clock, instances, store);
  return { clock, forwarder, me, owner };
}

/** Runs `forward` while the clock moves, until it settles (or `maxMs` of clock time passed). */
async function forwardWhile(
  clock: ManualClock,
  forwarder: Forwarder,
  target: string,
  maxMs = 20_000,
): Promise<{ outcome: ForwardOutcome | Error; elapsed: number }> {
  const started = clock.now();
  let done: ForwardOutcome | Error | undefined;
  void forwarder.forward(target, request).then(
    (o) => (done = o),
    (e: unknown) => (done = e as Error),
  );
  await settle();
  while (done === undefined && clock.now() - started < maxMs) await clock.advance(100);
  assert.ok(done !== undefined, 'forward settled');
  return { outcome: done, elapsed: clock.now() - started };
}

const ack = (m: BusMessage): BusMessage | undefined =>
  m.t === 'handle' ? { t: 'handled', callId: m.callId, outcome: 'accepted' } : undefined;

describe('Forwarder (injected clock)', () => {
  it('resolves with the owner’s acknowledgement', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    owner.answer = ack;
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner');
    assert.deepEqual(outcome, { kind: 'accepted' });
    assert.equal(elapsed, 0);
    assert.equal(owner.received.filter((m) => m.t === 'handle').length, 1);
  });

  it('passes refusals on: not the owner, draining, an error with its code', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    for (const expected of [
      { kind: 'not-owner' },
      { kind: 'draining' },
      { kind: 'error', code: 'INVALID_REQUEST', message: 'bad id' },
    ] as const) {
      owner.answer = (m) =>
        m.t === 'handle'
          ? {
              t: 'handled',
              callId: m.callId,
              outcome: expected.kind,
              ...(expected.kind === 'error' ? { code: expected.code, message: expected.message } : {}),
            }
          : undefined;
      const { outcome } = await forwardWhile(clock, forwarder, 'owner');
      assert.deepEqual(outcome, expected);
    }
  });

  it('a dead owner (nobody subscribed, heartbeat gone) is found at once', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    await owner.kill();
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner');
    assert.deepEqual(outcome, { kind: 'dead' });
    assert.equal(elapsed, 0, 'no waiting for a timeout');
  });

  it('a killed owner whose heartbeat has not expired yet is dead once its count stops moving', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    await owner.unsubscribe(); // the process is killed: no subscriber…
    owner.ownership.stop(); // …and no heartbeat, but its record has not expired yet
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner');
    assert.deepEqual(outcome, { kind: 'dead' });
    assert.ok(elapsed <= HEARTBEAT * 2, `found dead in ${elapsed} ms`);
  });

  it('an owner whose subscriber reconnects is not taken for dead: the message is sent again', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    owner.answer = ack;
    await owner.unsubscribe(); // subscriber gone for a moment; the process (its heartbeat) lives on
    const result = forwardWhile(clock, forwarder, 'owner');
    await clock.advance(200);
    await owner.subscribe();
    const { outcome } = await result;
    assert.deepEqual(outcome, { kind: 'accepted' });
    assert.equal(owner.received.filter((m) => m.t === 'handle').length, 1, 'the resent message arrived');
  });

  it('a frozen owner (subscribed, silent, heartbeat expired) is unresponsive within ack + TTL', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    owner.answer = () => undefined; // receives, never acknowledges
    owner.ownership.stop(); // …and stops beating, as a paused process does
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner');
    assert.deepEqual(outcome, { kind: 'unresponsive' });
    assert.ok(elapsed >= ACK && elapsed <= ACK + TTL + ACK, `took ${elapsed} ms`);
  });

  it('an alive owner that lost the message gets it again (same call id) and acknowledges', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    let seen = 0;
    const ids = new Set<string>();
    owner.answer = (m) => {
      if (m.t !== 'handle') return undefined;
      ids.add(m.callId);
      return ++seen === 1 ? undefined : { t: 'handled', callId: m.callId, outcome: 'accepted' };
    };
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner');
    assert.deepEqual(outcome, { kind: 'accepted' });
    assert.equal(seen, 2);
    assert.equal(ids.size, 1, 'resent under the same call id (the owner deduplicates)');
    assert.ok(elapsed >= ACK);
  });

  it('an owner that is alive but never acknowledges gets a 503 after maxWaitMs', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    owner.answer = () => undefined;
    const { outcome, elapsed } = await forwardWhile(clock, forwarder, 'owner', 30_000);
    assert.ok(
      outcome instanceof Error &&
        /did not take the messages/.test(
          String((outcome as Error & { cause?: unknown }).cause ?? outcome.message),
        ),
    );
    assert.ok(elapsed >= 10_000 && elapsed <= 12_000, `gave up after ${elapsed} ms`);
  });

  it('watch: a stream is lost when its producer says it is gone, dies, or freezes', async () => {
    const { clock, forwarder, me, owner } = setup();
    await me.start();
    await owner.start();
    const lost: string[] = [];
    // 1. The producer answers that it does not run the stream any more.
    owner.answer = (m) =>
      m.t === 'ping'
        ? { t: 'pong', nonce: m.nonce, gone: m.streams.filter((s) => s.streamId === 's1') }
        : undefined;
    forwarder.watch('owner', 'sid', 's1', () => lost.push('s1'));
    const stopS2 = forwarder.watch('owner', 'sid', 's2', () => lost.push('s2'));
    await forwarder.tick();
    await settle();
    assert.deepEqual(lost, ['s1']);
    // 2. It freezes: pings go unanswered, then its heartbeat expires.
    owner.answer = () => undefined;
    owner.ownership.stop();
    for (let i = 0; i < 8 && lost.length < 2; i++) {
      await clock.advance(ACK);
      await forwarder.tick();
      await settle();
    }
    assert.deepEqual(lost, ['s1', 's2']);
    stopS2();
    // 3. A new producer that dies: nobody subscribed, no heartbeat.
    forwarder.watch('owner', 'sid', 's3', () => lost.push('s3'));
    await owner.unsubscribe();
    await forwarder.tick();
    await settle();
    assert.deepEqual(lost, ['s1', 's2', 's3']);
  });
});
