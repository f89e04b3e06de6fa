import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { FleetError } from '../../../src/errors.js';
import { untilGone } from './expiry.js';
import type { SessionRecord, SessionStore, TtlPolicy } from '../../../src/store/session-store.js';

/** Two handles on one store: for Redis two stores on two separate connections, for memory the same one. */
export interface Stores {
  a: SessionStore;
  b: SessionStore;
}
export type MakeStores = (ttl: TtlPolicy) => Stores;

export const LONG: TtlPolicy = { idleMs: 60_000, maxLifetimeMs: 600_000 };

export function newId(): string {
  return randomBytes(16).toString('base64url');
}

export function record(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: newId(),
    principal: 'alice',
    transport: 'streamable-http',
    protocolVersion: '2025-06-18',
    initialize: {
      protocolVersion: '2025-06-18',
      capabilities: { sampling: {}, elicitation: {} },
      clientInfo: { name: 'test-client', version: '1.0.0' },
    },
    createdAt: Date.now(),
    owner: 'instance-1',
    epoch: 1,
    ...overrides,
  };
}

export function isFleetError(code: string) {
  return (err: unknown) => err instanceof FleetError && err.code === code;
}

/** Increments `{n}` in the session's data through compare-and-set, retrying on conflicts. */
export async function casIncrement(store: SessionStore, id: string): Promise<number> {
  for (let attempts = 1; ; attempts++) {
    const snap = await store.getData(id);
    assert.ok(snap, 'session is alive');
    const n = snap.json === undefined ? 0 : (JSON.parse(snap.json) as { n: number }).n;
    const result = await store.setData(id, JSON.stringify({ n: n + 1 }), snap.version);
    if (typeof result === 'number') return attempts;
    assert.equal(result, 'conflict');
  }
}

/** The SessionStore contract; `make` is called inside tests, after the suite's `before` hooks. */
export function sessionStoreContract(make: MakeStores): void {
  const opened: SessionStore[] = [];
  const open = (ttl: TtlPolicy): Stores => {
    const stores = make(ttl);
    opened.push(stores.a, stores.b);
    return stores;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it('creates and loads a record, with optional fields', async () => {
    const { a, b } = open(LONG);
    const r = record({ logLevel: 'debug', subscriptions: ['file:///a', 'file:///b'], transport: 'sse' });
    await a.create(r);
    assert.deepEqual(await b.load(r.id), r);
    const plain = record();
    await a.create(plain);
    assert.deepEqual(await b.load(plain.id), plain);
  });

  it('returns undefined / false for an unknown session', async () => {
    const { a } = open(LONG);
    const id = newId();
    assert.equal(await a.load(id), undefined);
    assert.equal(await a.touch(id), undefined);
    assert.equal(await a.update(id, { initialized: true }), 'gone');
    assert.deepEqual(await a.claim(id, 'i2', { owner: 'instance-1', epoch: 1 }), { status: 'gone' });
    assert.equal(await a.release(id, { owner: 'instance-1', epoch: 1 }, 'handoff'), false);
    assert.equal(await a.delete(id), false);
    assert.equal(await a.getData(id), undefined);
    assert.equal(await a.setData(id, '{}'), 'gone');
    // update of a gone session must not leave a partial record behind
    assert.equal(await a.load(id), undefined);
  });

  it('rejects a second create of the same id with SESSION_EXISTS', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    await assert.rejects(
      b.create(record({ id: r.id, principal: 'mallory' })),
      isFleetError('SESSION_EXISTS'),
    );
    assert.equal((await a.load(r.id))?.principal, 'alice');
    assert.equal(await a.count(), 1);
  });

  it('hands out copies, never its own objects', async () => {
    const { a } = open(LONG);
    const r = record({ subscriptions: ['x'] });
    await a.create(r);
    r.subscriptions!.push('mutated');
    const loaded = await a.load(r.id);
    assert.deepEqual(loaded?.subscriptions, ['x']);
    loaded!.owner = 'mutated';
    assert.equal((await a.load(r.id))?.owner, 'instance-1');
  });

  it('updates mutable fields and clears them with undefined', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    assert.equal(
      await a.update(r.id, { logLevel: 'warning', subscriptions: ['s://1'], initialized: true }),
      'ok',
    );
    assert.deepEqual(await b.load(r.id), {
      ...r,
      logLevel: 'warning',
      subscriptions: ['s://1'],
      initialized: true,
    });
    assert.equal(
      await b.update(r.id, { logLevel: undefined, subscriptions: undefined, initialized: false }),
      'ok',
    );
    assert.deepEqual(await a.load(r.id), r);
    assert.equal(await a.update(r.id, {}), 'ok');
  });

  it('touch reports the ownership; claim is a compare-and-set that bumps the epoch', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    assert.deepEqual(await a.touch(r.id), { owner: 'instance-1', epoch: 1, transport: 'streamable-http' });
    assert.equal(await b.touch(r.id, 'mallory'), undefined, "another principal's session is not there");
    assert.deepEqual(await b.touch(r.id, 'alice'), {
      owner: 'instance-1',
      epoch: 1,
      transport: 'streamable-http',
    });
    // A claim against a stale view changes nothing and says who owns it now.
    assert.deepEqual(await b.claim(r.id, 'i2', { owner: 'instance-1', epoch: 0 }), {
      status: 'taken',
      ownership: { owner: 'instance-1', epoch: 1 },
    });
    const won = await b.claim(r.id, 'i2', { owner: 'instance-1', epoch: 1 });
    assert.equal(won.status, 'claimed');
    assert.deepEqual(won.status === 'claimed' && won.record, { ...r, owner: 'i2', epoch: 2 });
    // Two claimants racing on the same view: exactly one wins.
    const race = await Promise.all([
      a.claim(r.id, 'i3', { owner: 'i2', epoch: 2 }),
      b.claim(r.id, 'i4', { owner: 'i2', epoch: 2 }),
    ]);
    assert.deepEqual(race.map((o) => o.status).sort(), ['claimed', 'taken']);
    const now = await a.touch(r.id);
    assert.equal(now?.epoch, 3);
    assert.ok(now?.owner === 'i3' || now?.owner === 'i4');
    // Another principal's session cannot be claimed (nor seen), nor can a legacy one.
    assert.deepEqual(await a.claim(r.id, 'i5', now!, 'mallory'), { status: 'gone' });
    const legacy = record({ transport: 'sse' });
    await a.create(legacy);
    assert.deepEqual(await b.claim(legacy.id, 'i5', { owner: 'instance-1', epoch: 1 }), { status: 'gone' });
  });

  it('release gives ownership up only for its holder; the released session is claimable', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    assert.equal(await b.release(r.id, { owner: 'instance-1', epoch: 0 }, 'handoff'), false, 'stale epoch');
    assert.equal(await b.release(r.id, { owner: 'i2', epoch: 1 }, 'handoff'), false, 'not the owner');
    assert.equal(await a.release(r.id, { owner: 'instance-1', epoch: 1 }, 'handoff'), true);
    assert.deepEqual(await b.touch(r.id), { owner: '', epoch: 1, transport: 'streamable-http' });
    assert.equal(
      await a.release(r.id, { owner: 'instance-1', epoch: 1 }, 'handoff'),
      false,
      'already released',
    );
    const claimed = await b.claim(r.id, 'i2', { owner: '', epoch: 1 });
    assert.equal(claimed.status === 'claimed' && claimed.record.epoch, 2);
    // The claimant learns why the session was released; the record keeps no trace of it after.
    assert.equal(claimed.status === 'claimed' && claimed.record.released, 'handoff');
    assert.equal((await a.load(r.id))?.released, undefined);
    assert.equal(await b.release(r.id, { owner: 'i2', epoch: 2 }, 'eviction'), true);
    const again = await a.claim(r.id, 'i3', { owner: '', epoch: 2 });
    assert.equal(again.status === 'claimed' && again.record.released, 'eviction');
  });

  it('touchOrClaim claims a released session in the same step, and only refreshes an owned one', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    // Owned: nothing changes but the TTL.
    assert.deepEqual(await b.touchOrClaim(r.id, 'alice', 'i2'), {
      status: 'owned',
      state: { owner: 'instance-1', epoch: 1, transport: 'streamable-http' },
    });
    assert.equal(await b.touchOrClaim(r.id, 'mallory', 'i2'), undefined, "another principal's session");
    assert.equal(await b.touchOrClaim(newId(), 'alice', 'i2'), undefined, 'no such session');
    assert.deepEqual(await a.touch(r.id), { owner: 'instance-1', epoch: 1, transport: 'streamable-http' });
    // Released: the first caller claims it, with the release reason; the record keeps no trace of it.
    assert.equal(await a.release(r.id, { owner: 'instance-1', epoch: 1 }, 'eviction'), true);
    assert.equal(await b.touchOrClaim(r.id, 'mallory', 'i2'), undefined, 'not claimed for another principal');
    const race = await Promise.all([
      a.touchOrClaim(r.id, 'alice', 'i3'),
      b.touchOrClaim(r.id, 'alice', 'i4'),
    ]);
    const won = race.find((o) => o?.status === 'claimed');
    const lost = race.find((o) => o?.status === 'owned');
    assert.ok(won?.status === 'claimed' && lost?.status === 'owned', 'exactly one claims it');
    const { standaloneHolder: _, ...claimed } = won;
    assert.deepEqual(claimed.record, { ...r, owner: claimed.record.owner, epoch: 2, released: 'eviction' });
    assert.deepEqual(lost.state, { owner: claimed.record.owner, epoch: 2, transport: 'streamable-http' });
    assert.equal((await a.load(r.id))?.released, undefined);
    // A legacy session is never claimed (it lives and dies with its stream), even without an owner.
    const legacy = record({ transport: 'sse', owner: '' });
    await a.create(legacy);
    assert.deepEqual(await b.touchOrClaim(legacy.id, 'alice', 'i2'), {
      status: 'owned',
      state: { owner: '', epoch: 1, transport: 'sse' },
    });
  });

  it('fenced writes go through only for the current owner and epoch', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    const old = { owner: 'instance-1', epoch: 1 };
    assert.equal(await a.update(r.id, { logLevel: 'info' }, old), 'ok');
    assert.equal(await a.setData(r.id, '"mine"', undefined, old), 1);
    await b.claim(r.id, 'i2', old);
    // The replaced owner writes nothing any more.
    assert.equal(await a.update(r.id, { logLevel: 'debug' }, old), 'fenced');
    assert.equal(await a.setData(r.id, '"stale"', undefined, old), 'fenced');
    assert.equal(await a.setData(r.id, '"stale"', 1, old), 'fenced');
    assert.equal((await b.load(r.id))?.logLevel, 'info');
    assert.deepEqual(await b.getData(r.id), { json: '"mine"', version: 1 });
    const current = { owner: 'i2', epoch: 2 };
    assert.equal(await b.update(r.id, { logLevel: 'debug' }, current), 'ok');
    assert.equal(await b.setData(r.id, '"new"', 1, current), 2);
    // Unfenced writes (fleet.sessionData from outside a handler) still work.
    assert.equal(await a.setData(r.id, '"outside"'), 3);
    await a.delete(r.id);
    assert.equal(await b.update(r.id, { logLevel: 'info' }, current), 'gone');
    assert.equal(await b.setData(r.id, '"x"', undefined, current), 'gone');
  });

  it('slides the idle TTL on load, touch, update, getData and setData', async () => {
    const { a } = open({ idleMs: 800, maxLifetimeMs: 60_000 });
    const r = record();
    await a.create(r);
    const refreshers = [
      () => a.touch(r.id),
      () => a.load(r.id),
      () => a.update(r.id, { initialized: true }),
      () => a.getData(r.id),
      () => a.setData(r.id, '1'),
    ];
    // 5 × 250 ms, well past the 800 ms idle TTL: only the refreshes keep it alive (each one
    // lands far inside the TTL, so a slow machine cannot make it expire in between).
    const started = Date.now();
    for (const refresh of refreshers) {
      await sleep(250);
      assert.notEqual(await refresh(), undefined);
      assert.notEqual(await a.touch(r.id), undefined);
    }
    assert.ok(Date.now() - started > 1000, 'outlived its idle TTL');
    const lastTouch = Date.now();
    // Polls the count: load and touch would slide the TTL they are waiting on.
    await untilGone('idle session', async () => (await a.count()) === 0);
    assert.ok(Date.now() - lastTouch >= 700, 'did not expire early');
    assert.equal(await a.touch(r.id), undefined);
    assert.equal(await a.load(r.id), undefined);
  });

  it('peek reports the ownership without refreshing the idle TTL', async () => {
    const { a, b } = open({ idleMs: 600, maxLifetimeMs: 60_000 });
    const r = record({ owner: 'i1', epoch: 3 });
    await a.create(r);
    assert.deepEqual(await b.peek(r.id), { owner: 'i1', epoch: 3, transport: 'streamable-http' });
    assert.equal(await b.peek(newId()), undefined);
    // Peeking all the time does not keep it alive.
    const started = Date.now();
    await untilGone('a peeked session', async () => (await b.peek(r.id)) === undefined);
    assert.ok(Date.now() - started < 3000, 'expired by its idle TTL');
    assert.equal(await a.touch(r.id), undefined);
  });

  it("load with another principal reveals nothing and leaves the owner's TTL alone", async () => {
    const { a, b } = open({ idleMs: 400, maxLifetimeMs: 60_000 });
    const r = record({ principal: 'alice' });
    await a.create(r);
    assert.equal((await b.load(r.id, 'alice'))?.principal, 'alice');
    // 4 × 150 ms of foreign loads: they must not keep the 400 ms session alive.
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      assert.equal(await b.load(r.id, 'mallory'), undefined);
    }
    assert.equal(await a.load(r.id, 'alice'), undefined, 'expired: the foreign loads did not refresh it');
    assert.equal(await a.count(), 0);
  });

  it('ends a session at its maximum lifetime however often it is touched', async () => {
    const { a } = open({ idleMs: 400, maxLifetimeMs: 1000 });
    const r = record();
    await a.create(r);
    const seen: Array<{ at: number; alive: boolean }> = [];
    while (Date.now() - r.createdAt < 1400) {
      const at = Date.now() - r.createdAt;
      seen.push({ at, alive: (await a.touch(r.id)) !== undefined });
      await sleep(100);
    }
    for (const s of seen) {
      if (s.at < 850) assert.equal(s.alive, true, `alive at ${s.at} ms`);
      if (s.at >= 1050) assert.equal(s.alive, false, `gone at ${s.at} ms`);
    }
    assert.equal(await a.load(r.id), undefined);
  });

  it('counts lifetime from createdAt, so an old record dies early', async () => {
    const { a } = open({ idleMs: 60_000, maxLifetimeMs: 1500 });
    const old = record({ createdAt: Date.now() - 800 });
    await a.create(old);
    assert.notEqual(await a.touch(old.id), undefined);
    assert.equal(await a.count(), 1);
    await untilGone('old session', async () => (await a.touch(old.id)) === undefined);
    assert.ok(Date.now() - old.createdAt < 5000, 'ended by its lifetime, not its 60 s idle TTL');
    assert.equal(await a.count(), 0);
    // Already past its lifetime at creation: never becomes visible.
    const dead = record({ createdAt: Date.now() - 2000 });
    await a.create(dead);
    assert.equal(await a.load(dead.id), undefined);
    assert.equal(await a.count(), 0);
  });

  it('deletes a session and everything it stored', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    assert.equal(await a.setData(r.id, '{"x":1}'), 1);
    assert.equal(await a.count(), 1);
    assert.equal(await b.delete(r.id), true);
    assert.equal(await b.delete(r.id), false);
    assert.equal(await a.load(r.id), undefined);
    assert.equal(await a.getData(r.id), undefined);
    assert.equal(await a.setData(r.id, '{}'), 'gone');
    assert.equal(await a.count(), 0);
  });

  it('counts live sessions, dropping expired and deleted ones', async () => {
    const { a, b } = open({ idleMs: 800, maxLifetimeMs: 60_000 });
    assert.equal(await a.count(), 0);
    const keep = record();
    const drop = record();
    const idle = record();
    for (const r of [keep, drop, idle]) await a.create(r);
    assert.equal(await b.count(), 3);
    await b.delete(drop.id);
    assert.equal(await a.count(), 2);
    // `keep` is touched on every poll, far inside its TTL; `idle` never is.
    await untilGone('the idle session from the count', async () => {
      assert.notEqual(await a.touch(keep.id), undefined, 'a touched session stays');
      return (await b.count()) === 1;
    });
    assert.equal(await a.touch(idle.id), undefined);
    assert.notEqual(await a.touch(keep.id), undefined);
    assert.equal(await a.count(), 1);
  });

  it('versions application data and rejects stale compare-and-set', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    assert.deepEqual(await a.getData(r.id), { json: undefined, version: 0 });
    assert.equal(await a.setData(r.id, '{"n":1}', 0), 1);
    assert.deepEqual(await b.getData(r.id), { json: '{"n":1}', version: 1 });
    assert.equal(await b.setData(r.id, '{"n":2}', 1), 2);
    assert.equal(await a.setData(r.id, '{"n":3}', 1), 'conflict');
    assert.equal(await a.setData(r.id, '{"n":3}', 0), 'conflict');
    assert.deepEqual(await a.getData(r.id), { json: '{"n":2}', version: 2 });
    assert.equal(await a.setData(r.id, '{"n":4}'), 3, 'unconditional write');
    assert.equal(await a.setData(r.id, undefined, 3), 4, 'clearing moves the version on');
    assert.deepEqual(await b.getData(r.id), { json: undefined, version: 4 });
    assert.equal(await b.setData(r.id, '', 4), 5, 'an empty string is a value, not a clear');
    assert.deepEqual(await b.getData(r.id), { json: '', version: 5 });
  });

  it('expires application data with its session', async () => {
    const { a } = open({ idleMs: 300, maxLifetimeMs: 60_000 });
    const r = record();
    await a.create(r);
    assert.equal(await a.setData(r.id, '{"big":true}'), 1);
    await untilGone('the session', async () => (await a.count()) === 0);
    assert.equal(await a.getData(r.id), undefined);
    assert.equal(await a.setData(r.id, '{}'), 'gone');
  });

  it('ends at exactly 100 after 100 concurrent CAS increments from two clients', async () => {
    const { a, b } = open(LONG);
    const r = record();
    await a.create(r);
    const attempts = await Promise.all(
      Array.from({ length: 100 }, (_, i) => casIncrement(i % 2 ? a : b, r.id)),
    );
    const snap = await a.getData(r.id);
    assert.deepEqual(snap, { json: '{"n":100}', version: 100 });
    assert.ok(
      attempts.some((n) => n > 1),
      'the increments really raced',
    );
  });

  it('answers ping and closes idempotently', async () => {
    const { a } = open(LONG);
    await a.ping();
    await a.close();
    await a.close();
  });
}
