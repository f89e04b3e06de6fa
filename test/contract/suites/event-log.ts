import { afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { FleetError } from '../../../src/errors.js';
import { END_MARKER, type EventLog, type StoredEvent } from '../../../src/events/event-log.js';
import type { SessionStore } from '../../../src/store/session-store.js';
import { untilGone } from './expiry.js';

/** Two handles on one log (two connections for Redis, the same object for memory). */
export interface Logs {
  a: EventLog;
  b: EventLog;
}
export type MakeLogs = (opts: { maxEvents: number; ttlMs: number; endedTtlMs?: number }) => Logs;

export const DEFAULTS = { maxEvents: 1000, ttlMs: 60_000 };

const isConflict = (err: unknown) => err instanceof FleetError && err.code === 'CONFLICT';

export const newSession = () => randomBytes(16).toString('base64url');
export const seqs = (events: StoredEvent[]) => events.map((e) => e.seq);
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The EventLog contract; `make` is called inside tests, after the suite's `before` hooks. */
export function eventLogContract(make: MakeLogs): void {
  const opened: EventLog[] = [];
  const open = (opts: Parameters<MakeLogs>[0] = DEFAULTS): Logs => {
    const logs = make(opts);
    opened.push(logs.a, logs.b);
    return logs;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((l) => l.close()));
  });

  it('numbers events 1, 2, … per stream and reads them back in order', async () => {
    const { a, b } = open();
    const sid = newSession();
    assert.equal(await a.lastSeq(sid, 'GET'), 0);
    assert.deepEqual(await a.readAfter(sid, 'GET', 0), []);
    assert.deepEqual(await a.append(sid, 'GET', ['{"m":1}', '{"m":2}', '{"m":3}']), [1, 2, 3]);
    assert.deepEqual(await b.append(sid, 'GET', ['{"m":4}']), [4]);
    assert.deepEqual(await b.readAfter(sid, 'GET', 0), [
      { seq: 1, data: '{"m":1}' },
      { seq: 2, data: '{"m":2}' },
      { seq: 3, data: '{"m":3}' },
      { seq: 4, data: '{"m":4}' },
    ]);
    assert.deepEqual(await a.readAfter(sid, 'GET', 2), [
      { seq: 3, data: '{"m":3}' },
      { seq: 4, data: '{"m":4}' },
    ]);
    assert.deepEqual(await a.readAfter(sid, 'GET', 4), []);
    assert.deepEqual(await a.readAfter(sid, 'GET', 99), []);
    assert.equal(await b.lastSeq(sid, 'GET'), 4);
  });

  it('keeps streams and sessions apart', async () => {
    const { a } = open();
    const [s1, s2] = [newSession(), newSession()];
    await a.append(s1, 'GET', ['a']);
    assert.deepEqual(await a.append(s1, 'post-1', ['b', 'c']), [1, 2]);
    assert.deepEqual(await a.append(s2, 'GET', ['d']), [1]);
    assert.deepEqual(await a.readAfter(s1, 'GET', 0), [{ seq: 1, data: 'a' }]);
    assert.equal(await a.lastSeq(s1, 'post-1'), 2);
    assert.equal(await a.lastSeq(s2, 'post-1'), 0);
  });

  it('appends nothing for an empty batch', async () => {
    const { a } = open();
    const sid = newSession();
    assert.deepEqual(await a.append(sid, 'GET', []), []);
    assert.equal(await a.lastSeq(sid, 'GET'), 0);
    await a.append(sid, 'GET', ['x']);
    assert.deepEqual(await a.append(sid, 'GET', []), []);
    assert.equal(await a.lastSeq(sid, 'GET'), 1);
  });

  it('stores any string verbatim', async () => {
    const { a } = open();
    const sid = newSession();
    const data = [
      '',
      'line\nbreak',
      'ünïcødé ✓',
      JSON.stringify({ jsonrpc: '2.0', method: 'x', params: { d: 'data: y' } }),
    ];
    await a.append(sid, 'GET', data);
    assert.deepEqual(
      (await a.readAfter(sid, 'GET', 0)).map((e) => e.data),
      data,
    );
  });

  it('caps the log, oldest first, and still knows the last seq', async () => {
    const { a } = open({ maxEvents: 10, ttlMs: 60_000 });
    const sid = newSession();
    for (let i = 0; i < 30; i++)
      await a.append(
        sid,
        'GET',
        range(1, 10).map((j) => `e${i * 10 + j}`),
      );
    const kept = await a.readAfter(sid, 'GET', 0);
    // Redis trims approximately (MAXLEN ~, whole nodes): at least maxEvents stay, far fewer than 300.
    assert.ok(kept.length >= 10 && kept.length < 300, `kept ${kept.length}`);
    assert.deepEqual(seqs(kept), range(301 - kept.length, 300), 'the newest events, consecutive');
    assert.equal(kept.at(-1)?.data, 'e300');
    assert.equal(await a.lastSeq(sid, 'GET'), 300);
    assert.deepEqual(await a.readAfter(sid, 'GET', 1), kept, 'trimmed past: every kept event');
    assert.deepEqual(seqs(await a.readAfter(sid, 'GET', 295)), range(296, 300));
    assert.deepEqual(await a.append(sid, 'GET', ['next']), [301]);
  });

  it('gives concurrent appends from two clients distinct consecutive seqs', async () => {
    const { a, b } = open();
    const sid = newSession();
    const batches = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).append(sid, 'GET', [`${i}.0`, `${i}.1`])),
    );
    for (const batch of batches) assert.equal(batch[1], batch[0]! + 1, 'one batch is one block');
    assert.deepEqual(
      batches.flat().sort((x, y) => x - y),
      range(1, 100),
    );
    const events = await a.readAfter(sid, 'GET', 0);
    assert.deepEqual(seqs(events), range(1, 100));
    batches.forEach((batch, i) => {
      assert.equal(events[batch[0]! - 1]?.data, `${i}.0`);
      assert.equal(events[batch[1]! - 1]?.data, `${i}.1`);
    });
  });

  it('deletes a log, after which numbering starts again', async () => {
    const { a, b } = open();
    const sid = newSession();
    await a.append(sid, 'GET', ['a', 'b']);
    await b.delete(sid, 'GET');
    assert.equal(await a.lastSeq(sid, 'GET'), 0);
    assert.deepEqual(await a.readAfter(sid, 'GET', 0), []);
    assert.deepEqual(await a.append(sid, 'GET', ['c']), [1]);
    await b.delete(sid, 'never-written');
  });

  it('expires a log ttlMs after its last append', async () => {
    const { a } = open({ maxEvents: 100, ttlMs: 1000 });
    const sid = newSession();
    const first = Date.now();
    await a.append(sid, 'GET', ['a']);
    await sleep(600);
    await a.append(sid, 'GET', ['b']);
    const second = Date.now();
    await sleep(600);
    // Read far inside the second append's TTL; past the first one's only if the machine kept up.
    const lastSeq = await a.lastSeq(sid, 'GET');
    assert.ok(Date.now() - first > 1000, 'outlived the first TTL');
    assert.equal(lastSeq, 2, 'the append refreshed the TTL');
    await untilGone('the log', async () => (await a.lastSeq(sid, 'GET')) === 0);
    assert.ok(Date.now() - second >= 900, 'did not expire early');
    assert.deepEqual(await a.readAfter(sid, 'GET', 0), []);
  });

  it('keeps a finished log only endedTtlMs after its end marker, a live one as long as its TTL', async () => {
    const { a, b } = open({ maxEvents: 100, ttlMs: 60_000, endedTtlMs: 300 });
    const [done, live] = [newSession(), newSession()];
    await a.append(done, 'p1', ['{"r":1}']);
    await a.append(live, 'GET', ['{"n":1}']);
    const ended = Date.now();
    assert.deepEqual(await a.append(done, 'p1', ['{"r":2}', END_MARKER]), [2, 3]);
    assert.deepEqual(seqs(await b.readAfter(done, 'p1', 0)), [1, 2, 3], 'readable right after the end');
    await untilGone('the finished log', async () => (await b.lastSeq(done, 'p1')) === 0);
    assert.ok(Date.now() - ended >= 250, 'not before its window');
    assert.equal(await b.lastSeq(live, 'GET'), 1, 'the live log stays');
    // A new append to the live stream, not an end: the full TTL again.
    await a.append(live, 'GET', ['{"n":2}']);
    assert.equal(await b.lastSeq(live, 'GET'), 2);
  });

  it('appends idempotently after a known sequence number: a retry gets its numbers back', async () => {
    const { a, b } = open();
    const sid = newSession();
    assert.deepEqual(await a.append(sid, 'p', ['{"m":1}', '{"m":2}'], undefined, 0), [1, 2]);
    // The same append again (its answer was lost): nothing appended, the same numbers.
    assert.deepEqual(await b.append(sid, 'p', ['{"m":1}', '{"m":2}'], undefined, 0), [1, 2]);
    assert.equal(await a.lastSeq(sid, 'p'), 2);
    assert.deepEqual(await a.append(sid, 'p', ['{"m":3}'], undefined, 2), [3]);
    // A log that moved on otherwise: refused, nothing appended.
    await assert.rejects(a.append(sid, 'p', ['{"m":4}'], undefined, 1), isConflict);
    assert.deepEqual(seqs(await b.readAfter(sid, 'p', 0)), [1, 2, 3]);
    // Without a number: appended whatever the log holds.
    assert.deepEqual(await a.append(sid, 'p', ['{"m":4}']), [4]);
  });

  it('rejects a sequence number that is not a non-negative integer', async () => {
    const { a } = open();
    for (const bad of [-1, 1.5, Number.NaN])
      await assert.rejects(a.readAfter(newSession(), 'GET', bad), RangeError);
  });

  it('deleteSession removes every log of the session and nothing of other sessions', async () => {
    const { a, b } = open();
    const [s1, s2] = [newSession(), newSession()];
    await a.append(s1, 'GET', ['1']);
    await a.append(s1, 'p1', ['1', '2']);
    await b.append(s1, 'p2', ['1']);
    await a.append(s2, 'GET', ['x']);
    await b.deleteSession(s1);
    for (const stream of ['GET', 'p1', 'p2']) {
      assert.deepEqual(await a.readAfter(s1, stream, 0), [], stream);
      assert.equal(await a.lastSeq(s1, stream), 0, stream);
    }
    assert.deepEqual(seqs(await a.readAfter(s2, 'GET', 0)), [1]);
    await a.deleteSession(newSession()); // nothing to delete: fine
  });

  it('closes idempotently', async () => {
    const { a } = open();
    await a.close();
    await a.close();
  });
}

/** Fenced appends (an owner writing for its session) against the session store of the same backend. */
export function fencedEventLogContract(make: () => { log: EventLog; store: SessionStore }): void {
  it('appends only while the fence (owner, epoch) still holds', async () => {
    const { log, store } = make();
    const sid = newSession();
    await store.create({
      id: sid,
      principal: 'p',
      transport: 'streamable-http',
      protocolVersion: '2025-11-25',
      initialize: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'c', version: '1' },
      },
      createdAt: Date.now(),
      owner: 'i1',
      epoch: 1,
    });
    const mine = { owner: 'i1', epoch: 1 };
    assert.deepEqual(await log.append(sid, 's', ['a'], mine), [1]);
    await store.claim(sid, 'i2', mine);
    await assert.rejects(log.append(sid, 's', ['b'], mine), isCode('NOT_OWNER'));
    assert.deepEqual(seqs(await log.readAfter(sid, 's', 0)), [1], 'nothing appended when fenced off');
    assert.deepEqual(await log.append(sid, 's', ['c'], { owner: 'i2', epoch: 2 }), [2]);
    await store.delete(sid);
    await assert.rejects(log.append(sid, 's', ['d'], { owner: 'i2', epoch: 2 }), isCode('SESSION_NOT_FOUND'));
    // An unfenced append (an instance answering for a producer that is gone) needs no session.
    assert.deepEqual(await log.append(sid, 's', ['e']), [3]);
  });
}

export const isCode = (code: string) => (err: unknown) => err instanceof FleetError && err.code === code;
