import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RequestStateRing } from '../../src/modern/request-state.js';
import { MemorySpentTokens } from '../../src/store/memory-spent-tokens.js';

const K1 = 'k1-0123456789abcdef0123456789abcdef';
const K2 = 'k2-0123456789abcdef0123456789abcdef';
const session = (sessionId: string) => ({ sessionId });

function ring(keys: string[], opts: { singleUse?: boolean; principal?: string } = {}) {
  return new RequestStateRing(
    { keys, singleUse: opts.singleUse },
    { principalNow: () => opts.principal, spent: new MemorySpentTokens() },
  );
}

describe('RequestStateRing', () => {
  it('rotation: minted with the first key, verified with any; a ring without the key rejects it', async () => {
    const state = await ring([K1]).mint({ step: 1 }, session('s1'));
    assert.deepEqual(await ring([K2, K1]).verify(state, session('s1')), { step: 1 });
    await assert.rejects(ring([K2]).verify(state, session('s1')), /mac/);
  });

  it('binds a state to its principal (2026) or its session (2025)', async () => {
    const forAlice = await ring([K1], { principal: 'alice' }).mint('x', {});
    assert.equal(await ring([K1], { principal: 'alice' }).verify(forAlice, {}), 'x');
    await assert.rejects(ring([K1], { principal: 'bob' }).verify(forAlice, {}), /bind/);
    const forS1 = await ring([K1]).mint('y', session('s1'));
    await assert.rejects(ring([K1]).verify(forS1, session('s2')), /bind/);
  });

  it('single use: the second verification of one state fails; equal payloads make distinct states', async () => {
    const r = ring([K1], { singleUse: true });
    const [s1, s2] = [await r.mint('same', session('s')), await r.mint('same', session('s'))];
    assert.notEqual(s1, s2);
    assert.equal(await r.verify(s1, session('s')), 'same');
    await assert.rejects(r.verify(s1, session('s')), /replayed/);
    assert.equal(await r.verify(s2, session('s')), 'same');
  });

  it('refuses short keys, an empty ring, and use without keys (with how to configure them)', async () => {
    assert.throws(() => ring(['short']), RangeError);
    assert.throws(() => ring([]), TypeError);
    const none = new RequestStateRing(undefined, {
      principalNow: () => undefined,
      spent: new MemorySpentTokens(),
    });
    await assert.rejects(none.mint('x', {}), /requestState: \{ keys/);
  });
});
