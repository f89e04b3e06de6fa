// The owner/lease logic with an injected clock: heartbeats, staleness after a pause, revalidation,
// claims and fencing, and telling a dead instance from one whose subscriber reconnects.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Ownership, type LossReason } from '../../src/ownership/ownership.js';
import { MemoryInstanceRegistry } from '../../src/store/memory-instance-registry.js';
import { MemorySessionStore } from '../../src/store/memory-session-store.js';
import type { SessionRecord } from '../../src/store/session-store.js';
import { ManualClock } from '../helpers/manual-clock.js';

const HEARTBEAT = 500;
const TTL = 2000;
const SETTLE = 10_000;

function setup(instanceId = 'a') {
  const clock = new ManualClock();
  const store = new MemorySessionStore(
    { idleMs: 3_600_000, maxLifetimeMs: 86_400_000 },
    { now: () => clock.now() },
  );
  const instances = new MemoryInstanceRegistry({ now: () => clock.now() });
  const lost: Array<[string, LossReason]> = [];
  let ticks = 0;
  const bus = { up: true };
  const make = (id: string) =>
    new Ownership({
      instanceId: id,
      store,
      instances,
      clock,
      heartbeatMs: HEARTBEAT,
      instanceTtlMs: TTL,
      draining: () => false,
      subscribed: () => bus.up,
      resubscribeSettleMs: SETTLE,
      onLost: (sid, reason) => lost.push([sid, reason]),
      onTick: () => ticks++,
      onError: () => {},
    });
  return { clock, store, instances, lost, bus, ticks: () => ticks, own: make(instanceId), make };
}

function record(owner: string, createdAt: number): SessionRecord {
  return {
    id: randomBytes(16).toString('hex'),
    principal: 'alice',
    transport: 'streamable-http',
    protocolVersion: '2025-11-25',
    initialize: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } },
    createdAt,
    owner,
    epoch: 1,
  };
}

describe('Ownership (injected clock)', () => {
  it('beats every heartbeatMs and is stale only after instanceTtlMs - heartbeatMs without a beat', async () => {
    const { clock, own, instances, ticks } = setup();
    assert.equal(own.isStale(), true, 'stale before the first heartbeat');
    await own.start();
    assert.equal(own.isStale(), false);
    await clock.advance(HEARTBEAT * 4);
    assert.equal(ticks(), 5, 'one tick per heartbeat, the first one included');
    assert.equal((await instances.read(['a']))[0]?.beats, 5);
    // A pause (no timer fires): after TTL - heartbeat the owner can no longer be sure.
    clock.freeze(TTL - HEARTBEAT - 1);
    assert.equal(own.isStale(), false);
    clock.freeze(1);
    assert.equal(own.isStale(), true);
    await own.close();
    assert.deepEqual(await instances.read(['a']), [undefined], 'removed from the registry on close');
  });

  it('uncheckedToken: only while the heartbeat is fresh and the bus subscribed; a disruption changes it', async () => {
    const { clock, own, bus } = setup();
    assert.equal(own.uncheckedToken(), undefined, 'no heartbeat yet');
    await own.start();
    const token = own.uncheckedToken();
    assert.notEqual(token, undefined);
    // Others call an owner dead after watching its heartbeat stand still for 1.5 intervals.
    clock.freeze(HEARTBEAT * 1.5 - 1);
    assert.equal(own.uncheckedToken(), token);
    clock.freeze(1);
    assert.equal(own.uncheckedToken(), undefined, 'heartbeat 1.5 intervals old');
    await clock.advance(HEARTBEAT); // the timer fires: a fresh beat
    assert.equal(own.uncheckedToken(), token);
    // The store's connection dropped: checks made before do not count any more.
    own.disrupted();
    const next = own.uncheckedToken();
    assert.notEqual(next, undefined);
    assert.notEqual(next, token);
    // Unsubscribed: a message to this instance reaches nobody, so another may be confirming it gone.
    bus.up = false;
    own.disrupted();
    assert.equal(own.uncheckedToken(), undefined);
    // Subscribed again: every request checks the store until a claim started meanwhile has landed.
    bus.up = true;
    own.disrupted(true);
    assert.equal(own.uncheckedToken(), undefined, 'settling after the resubscription');
    await clock.advance(SETTLE - HEARTBEAT);
    assert.equal(own.uncheckedToken(), undefined);
    await clock.advance(HEARTBEAT);
    const settled = own.uncheckedToken();
    assert.notEqual(settled, undefined);
    assert.notEqual(settled, next);
    await own.close();
  });

  it('claims and releases with compare-and-set; the fence follows the epoch', async () => {
    const { clock, store, own, make } = setup('a');
    const other = make('b');
    const r = record('', clock.now());
    await store.create(r);
    const seen = { owner: '', epoch: 1 };
    const first = await own.claim(r.id, seen);
    assert.equal(first.status, 'claimed');
    assert.deepEqual(own.fence(r.id), { owner: 'a', epoch: 2 });
    // b saw the old ownership: its claim loses and learns who owns it.
    assert.deepEqual(await other.claim(r.id, seen), { status: 'taken', ownership: { owner: 'a', epoch: 2 } });
    assert.equal(other.fence(r.id), undefined);
    assert.equal(await own.release(r.id, 'handoff'), true);
    assert.equal(own.fence(r.id), undefined);
    assert.equal(await own.release(r.id, 'handoff'), false, 'nothing to release twice');
    assert.equal((await other.claim(r.id, { owner: '', epoch: 2 })).status, 'claimed');
    assert.deepEqual(other.fence(r.id), { owner: 'b', epoch: 3 });
  });

  it('after a pause, revalidates before acting and gives up what was taken over meanwhile', async () => {
    const { clock, store, own, make, lost } = setup('a');
    await own.start();
    const kept = record('a', clock.now());
    const taken = record('a', clock.now());
    const expired = record('a', clock.now());
    for (const r of [kept, taken, expired]) {
      await store.create(r);
      own.track(r.id, 1);
    }
    await own.ensureCurrent(); // not stale: resolves at once, nothing checked
    assert.deepEqual(lost, []);
    // a freezes; meanwhile b claims one session (a looked dead) and another one is deleted.
    clock.freeze(TTL + 1);
    const b = make('b');
    assert.equal((await b.claim(taken.id, { owner: 'a', epoch: 1 })).status, 'claimed');
    await store.delete(expired.id);
    assert.equal(own.isStale(), true);
    await own.ensureCurrent();
    assert.deepEqual(
      lost.sort(),
      [
        [expired.id, 'expired'],
        [taken.id, 'replaced'],
      ].sort(),
    );
    assert.deepEqual(own.fence(kept.id), { owner: 'a', epoch: 1 }, 'still owns what nobody took');
    assert.equal(own.fence(taken.id), undefined);
    assert.equal(own.isStale(), false, 'the revalidation renewed the heartbeat');
  });

  it('a late heartbeat (the process woke up) revalidates by itself', async () => {
    const { clock, store, own, make, lost } = setup('a');
    await own.start();
    const r = record('a', clock.now());
    await store.create(r);
    own.track(r.id, 1);
    clock.freeze(TTL * 2);
    await make('b').claim(r.id, { owner: 'a', epoch: 1 });
    await clock.advance(1); // the overdue heartbeat fires now
    assert.deepEqual(lost, [[r.id, 'replaced']]);
  });

  it('confirmGone: a dead instance is gone, one that keeps beating is not', async () => {
    const { clock, own, make, instances } = setup('a');
    await own.start();
    const b = make('b');
    await b.start();
    const gone = own.confirmGone('b');
    await clock.advance(HEARTBEAT * 3); // b beats meanwhile: alive (its subscriber was reconnecting)
    assert.equal(await gone, false);
    await b.close(); // b stops beating (and leaves the registry)
    assert.equal(await own.confirmGone('b'), true);
    assert.equal(await own.confirmGone('never-existed'), true);
    // A frozen instance: its record is still there, but its heartbeat count does not move.
    await instances.beat({ instanceId: 'c', startedAt: 0, owned: 3, draining: false, beats: 7 }, TTL);
    const frozen = own.confirmGone('c');
    await clock.advance(HEARTBEAT * 3);
    assert.equal(await frozen, true);
  });

  it('no verdict while this instance cannot beat either: the store failed or lost its records', async () => {
    const { clock, own, make, instances } = setup('a');
    await own.start();
    const b = make('b');
    await b.start();
    // As after a Redis restart without persistence: every record is gone, ours too.
    await instances.remove('a');
    await instances.remove('b');
    assert.deepEqual(await own.alive(['b', 'never-existed']), [true, true], 'nobody is known dead');
    const verdict = own.confirmGone('b');
    await clock.advance(HEARTBEAT * 3); // both beat again meanwhile
    assert.equal(await verdict, false);
    // Once this instance's own record is back, a missing one means gone again.
    assert.deepEqual(await own.alive(['b', 'never-existed']), [true, false]);
    assert.equal(await own.confirmGone('never-existed'), true);
  });
});
