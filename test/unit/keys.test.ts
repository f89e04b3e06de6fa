// The key and channel names are an on-disk format: these strings must not change silently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RedisKeys } from '../../src/redis/keys.js';

describe('RedisKeys', () => {
  const k = new RedisKeys('mcp:');
  it('pins every key and channel name', () => {
    assert.equal(k.session('abc'), 'mcp:{abc}:session');
    assert.equal(k.data('abc'), 'mcp:{abc}:data');
    assert.equal(k.events('abc', 's1'), 'mcp:{abc}:events:s1');
    assert.equal(k.holder('abc', 'standalone'), 'mcp:{abc}:holder:standalone');
    assert.equal(k.logs('abc'), 'mcp:{abc}:logs');
    assert.equal(k.instance('pod-1'), 'mcp:{instances}:pod-1');
    assert.equal(k.instanceIndex(), 'mcp:{instances}');
    assert.equal(k.sessionIndex(), 'mcp:sessions');
    assert.equal(k.streamIndex(), 'mcp:streams');
    assert.equal(k.instanceChannel('pod-1'), 'mcp:instance:pod-1');
    assert.equal(k.broadcastChannel(), 'mcp:broadcast');
  });
  it('puts every per-session key in the session hash tag', () => {
    for (const key of [
      k.session('x1'),
      k.data('x1'),
      k.events('x1', 'y'),
      k.holder('x1', 'y'),
      k.logs('x1'),
    ]) {
      assert.match(key, /\{x1\}/);
      assert.equal(key.match(/\{/g)?.length, 1, 'exactly one hash tag');
    }
  });
});
