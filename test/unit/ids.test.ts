import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FleetError } from '../../src/errors.js';
import { assertSessionId, newSessionId } from '../../src/session-id.js';
import {
  decodeEventId,
  encodeEventId,
  newStreamId,
  producerOf,
  requestIdsOf,
  STANDALONE_STREAM_ID,
} from '../../src/transport/event-id.js';
import { issuerOf, OutgoingRequests } from '../../src/transport/outgoing-requests.js';
import { randomBase64url, randomHex } from '../../src/random.js';

describe('pooled random ids', () => {
  it('hand out every byte once, across refills of the 4 KiB pool', () => {
    // 3,000 × 16 bytes spans 11 refills; a byte handed out twice would repeat an id.
    const ids = Array.from({ length: 3000 }, () => randomHex(16));
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
    assert.match(randomBase64url(12), /^[A-Za-z0-9_-]{16}$/);
    assert.equal(randomHex(4096).length, 8192);
    assert.throws(() => randomHex(4097), RangeError);
  });
});

describe('session ids', () => {
  it('are 128 random bits, unique, and well-formed', () => {
    const ids = new Set(Array.from({ length: 1000 }, newSessionId));
    assert.equal(ids.size, 1000);
    for (const id of ids) {
      assert.match(id, /^[0-9a-f]{32}$/);
      assertSessionId(id);
    }
  });
  it('rejects ids no server could have issued, before any store access', () => {
    for (const bad of [
      '',
      'short',
      'has space in it',
      'x'.repeat(129),
      '{tagged}abc',
      'ctrl\u0001chars',
      'ümlautsüü',
    ]) {
      assert.throws(
        () => assertSessionId(bad),
        (e: unknown) => e instanceof FleetError && e.status === 400,
      );
    }
    assertSessionId('550e8400-e29b-41d4-a716-446655440000'); // a foreign UUID is well-formed → 404 later
  });
});

describe('event ids', () => {
  it('round-trip and name their producer', () => {
    const s = newStreamId('pod-7.example');
    assert.equal(producerOf(s), 'pod-7.example');
    assert.deepEqual(decodeEventId(encodeEventId(s, 42)), { streamId: s, seq: 42 });
    assert.equal(producerOf(STANDALONE_STREAM_ID), undefined);
    assert.deepEqual(decodeEventId('standalone.0'), { streamId: 'standalone', seq: 0 });
  });
  it('carry the ids of the requests a stream answers, when they fit', () => {
    const s = newStreamId('pod-7.example', [5, 'call-2']);
    assert.equal(producerOf(s), 'pod-7.example');
    assert.deepEqual(requestIdsOf(s), [5, 'call-2']);
    assert.deepEqual(decodeEventId(encodeEventId(s, 3)), { streamId: s, seq: 3 });
    assert.equal(requestIdsOf(newStreamId('pod-7.example')), undefined);
    // A batch whose ids do not fit in the 160 characters of a stream id: the id names the producer only.
    const big = newStreamId(
      'pod-7.example',
      Array.from({ length: 50 }, (_, i) => `request-${i}`),
    );
    assert.ok(big.length <= 160);
    assert.equal(producerOf(big), 'pod-7.example');
    assert.equal(requestIdsOf(big), undefined);
    // Ids we did not make name no producer.
    assert.equal(producerOf('abc'), undefined);
    assert.equal(requestIdsOf('0123456789abcdef05'), undefined);
  });
  it('reject malformed ids with a 400', () => {
    for (const bad of [
      '',
      'abc',
      'abc.',
      '.5',
      'abc.-1',
      'abc.01',
      'a b.1',
      'abc_1',
      'abc.1.2',
      'abc.99999999999999999',
    ]) {
      assert.throws(
        () => decodeEventId(bad),
        (e: unknown) => e instanceof FleetError && e.code === 'EVENT_ID_MALFORMED',
        bad,
      );
    }
  });
});

describe('outgoing request ids', () => {
  it('are unique per instance, name their issuer, and map back once', () => {
    const a = new OutgoingRequests<string>('inst-a');
    const b = new OutgoingRequests<string>('inst-b');
    const wa = a.rewrite('t1', 0);
    const wb = b.rewrite('t1', 0);
    assert.notEqual(wa, wb);
    assert.equal(issuerOf(wa), 'inst-a');
    assert.equal(issuerOf(wb), 'inst-b');
    assert.equal(a.wireIdOf('t1', 0), wa);
    assert.deepEqual(a.take(wa)?.originalId, 0);
    assert.equal(a.take(wa), undefined, 'a response is delivered once');
    assert.equal(issuerOf(7), undefined);
    assert.equal(issuerOf('client-id'), undefined);
  });
  it('forget drops every pending id of a closed owner', () => {
    const a = new OutgoingRequests<string>('inst-a');
    const w1 = a.rewrite('t1', 1);
    a.rewrite('t2', 1);
    a.forget('t1');
    assert.equal(a.peek(w1), undefined);
    assert.equal(a.size, 1);
  });
});
