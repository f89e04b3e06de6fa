import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StreamRecord, StreamRegistry } from '../../../src/store/stream-registry.js';
import { untilGone } from './expiry.js';

/** Two handles on one registry (two connections for Redis, the same object for memory). */
export interface Registries {
  a: StreamRegistry;
  b: StreamRegistry;
}
export type MakeRegistries = (heartbeatTtlMs: number) => Registries;

export const LONG_TTL = 60_000;

export function stream(overrides: Partial<StreamRecord> = {}): StreamRecord {
  const now = Date.now();
  return {
    sessionId: randomBytes(16).toString('base64url'),
    streamId: '_GET_stream',
    transport: 'streamable-http',
    instanceId: 'i1',
    createdAt: now,
    lastSeenAt: now,
    active: true,
    ...overrides,
  };
}

export const ref = (r: StreamRecord) => ({ sessionId: r.sessionId, streamId: r.streamId });

/** The StreamRegistry contract; `make` is called inside tests, after the suite's `before` hooks. */
export function streamRegistryContract(make: MakeRegistries): void {
  const opened: StreamRegistry[] = [];
  const open = (ttl: number): Registries => {
    const r = make(ttl);
    opened.push(r.a, r.b);
    return r;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  it('claims a stream and reads its record', async () => {
    const { a, b } = open(LONG_TTL);
    const r = stream({ transport: 'sse', active: false, streamId: 'post stream with spaces' });
    assert.equal((await a.claim(r)).previous, undefined);
    assert.deepEqual(await b.get(r.sessionId, r.streamId), r);
    assert.equal(await b.get(r.sessionId, 'other'), undefined);
    assert.equal(await b.get('unknown', r.streamId), undefined);
  });

  it('returns the previous holder when another instance takes over', async () => {
    const { a, b } = open(LONG_TTL);
    const r = stream();
    await a.claim(r);
    assert.equal(
      (await a.claim({ ...r, lastSeenAt: r.lastSeenAt + 1 })).previous,
      undefined,
      'same holder again',
    );
    const taken = { ...r, instanceId: 'i2', createdAt: r.createdAt + 5, lastSeenAt: r.lastSeenAt + 5 };
    assert.equal((await b.claim(taken)).previous, 'i1');
    assert.deepEqual(await a.get(r.sessionId, r.streamId), taken);
    assert.equal(await a.count(), 1);
  });

  it('releases only for the current holder', async () => {
    const { a, b } = open(LONG_TTL);
    const r = stream();
    await a.claim(r);
    await b.claim({ ...r, instanceId: 'i2' });
    await a.release(r.sessionId, r.streamId, 'i1');
    assert.equal((await b.get(r.sessionId, r.streamId))?.instanceId, 'i2');
    assert.equal(await a.count(), 1, 'a stale release leaves the count alone');
    assert.equal((await a.list()).length, 1);
    await b.release(r.sessionId, r.streamId, 'i2');
    assert.equal(await a.get(r.sessionId, r.streamId), undefined);
    assert.equal(await a.count(), 0);
    await b.release(r.sessionId, r.streamId, 'i2'); // releasing twice is harmless
  });

  it('keeps records alive by heartbeat and lets them expire without', async () => {
    const { a, b } = open(800);
    const kept = stream();
    const dropped = stream();
    await a.claim(kept);
    await a.claim(dropped);
    // Heartbeats every 300 ms, far inside the 800 ms TTL, for 1.2 s.
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      await b.heartbeat([ref(kept)], 'i1');
    }
    const lastBeat = Date.now();
    const record = await a.get(kept.sessionId, kept.streamId);
    assert.ok(record, 'heartbeats kept it alive past the TTL');
    assert.ok(record.lastSeenAt >= kept.lastSeenAt + 900, 'lastSeenAt moved');
    assert.equal(record.createdAt, kept.createdAt);
    assert.equal(await a.get(dropped.sessionId, dropped.streamId), undefined);
    assert.equal(await a.count(), 1);
    await untilGone(
      'the kept stream',
      async () => (await a.get(kept.sessionId, kept.streamId)) === undefined,
    );
    assert.ok(Date.now() - lastBeat >= 700, 'did not expire early');
    assert.equal(await a.count(), 0);
    assert.deepEqual(await a.list(), []);
  });

  it('ignores heartbeats from an instance that does not hold the stream', async () => {
    const { a, b } = open(400);
    const r = stream();
    await a.claim(r);
    const gone = stream();
    for (let i = 0; i < 3; i++) {
      await sleep(200);
      // Includes a stream nobody holds: must not come back into the count.
      await b.heartbeat([ref(r), ref(gone)], 'i2');
    }
    assert.equal(await a.get(r.sessionId, r.streamId), undefined, 'expired despite foreign heartbeats');
    assert.equal(await a.count(), 0);
    await b.heartbeat([], 'i2'); // nothing to do
  });

  it('counts held streams across sessions', async () => {
    const { a, b } = open(LONG_TTL);
    const rs = [stream(), stream(), stream({ instanceId: 'i2' })];
    const sameSession = stream({ sessionId: rs[0]!.sessionId, streamId: 'another' });
    for (const r of [...rs, sameSession]) await a.claim(r);
    assert.equal(await b.count(), 4);
    await b.release(rs[1]!.sessionId, rs[1]!.streamId, 'i1');
    assert.equal(await a.count(), 3);
  });

  it('lists held streams oldest heartbeat first, up to a limit', async () => {
    const { a, b } = open(LONG_TTL);
    const [s1, s2, s3] = [stream(), stream(), stream()];
    for (const r of [s1, s2, s3]) {
      await a.claim(r);
      await sleep(5);
    }
    await b.heartbeat([ref(s1)], 'i1');
    const listed = await b.list();
    assert.deepEqual(
      listed.map((r) => r.sessionId),
      [s2.sessionId, s3.sessionId, s1.sessionId],
    );
    assert.deepEqual(listed[0], s2);
    assert.deepEqual(
      (await a.list(2)).map((r) => r.sessionId),
      [s2.sessionId, s3.sessionId],
    );
    assert.deepEqual(await a.list(0), []);
  });

  it('hands out copies, never its own objects', async () => {
    const { a } = open(LONG_TTL);
    const r = stream();
    await a.claim(r);
    r.instanceId = 'mutated';
    const got = await a.get(r.sessionId, r.streamId);
    assert.equal(got?.instanceId, 'i1');
    got!.active = false;
    assert.equal((await a.get(r.sessionId, r.streamId))?.active, true);
  });

  it('closes idempotently', async () => {
    const { a } = open(LONG_TTL);
    await a.close();
    await a.close();
  });
}
