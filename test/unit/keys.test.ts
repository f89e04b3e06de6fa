// The key and channel names are an on-disk format: these strings must not change silently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import calculateSlot from 'cluster-key-slot';
import { RedisKeys, SHARDS, groupByShard, shardOf } from '../../src/redis/keys.js';
import { STANDALONE_STREAM_ID } from '../../src/transport/event-id.js';

describe('RedisKeys', () => {
  const k = new RedisKeys('mcp:');
  it('pins every key and channel name', () => {
    const tag = k.shardTag(shardOf('abc'));
    assert.equal(shardOf('abc'), 11); // FNV-1a of "abc" is 0x1a47e90b: 0x0b
    assert.equal(tag, '{s0b}');
    assert.equal(k.session('abc'), 'mcp:{s0b}:abc:session');
    assert.equal(k.data('abc'), 'mcp:{s0b}:abc:data');
    assert.equal(k.events('abc', 's1'), 'mcp:{s0b}:abc:events:s1');
    assert.equal(k.holder('abc', 'standalone'), 'mcp:{s0b}:abc:holder:standalone');
    assert.equal(k.standaloneHolder('abc'), k.holder('abc', STANDALONE_STREAM_ID));
    assert.equal(k.logs('abc'), 'mcp:{s0b}:abc:logs');
    assert.equal(k.sessionIndex(11), 'mcp:{s0b}:sessions');
    assert.equal(k.sessionIndexOf('abc'), 'mcp:{s0b}:sessions');
    assert.equal(k.streamIndex(11), 'mcp:{s0b}:streams');
    assert.equal(k.streamIndexOf('abc'), 'mcp:{s0b}:streams');
    assert.equal(k.instance('pod-1'), 'mcp:{instances}:pod-1');
    assert.equal(k.instanceIndex(), 'mcp:{instances}');
    assert.equal(k.instanceChannel('pod-1'), 'mcp:instance:pod-1');
    assert.equal(k.broadcastChannel(), 'mcp:broadcast');
  });
  it('puts every key of a session, and its shard indexes, in one hash tag', () => {
    const keys = [
      k.session('x1'),
      k.data('x1'),
      k.events('x1', 'y'),
      k.holder('x1', 'y'),
      k.logs('x1'),
      k.sessionIndexOf('x1'),
      k.streamIndexOf('x1'),
    ];
    const tags = new Set(keys.map((key) => /\{[^}]*\}/.exec(key)?.[0]));
    assert.equal(tags.size, 1, 'exactly one hash tag');
    for (const key of keys) assert.equal(key.match(/\{/g)?.length, 1, 'one brace pair');
  });
  it('spreads session ids evenly over the shards', () => {
    const counts = new Array<number>(SHARDS).fill(0);
    for (let i = 0; i < SHARDS * 200; i++) counts[shardOf(`${i.toString(16).padStart(32, '0')}`)]!++;
    assert.ok(
      Math.max(...counts) < 200 * 1.5 && Math.min(...counts) > 200 * 0.5,
      `${Math.min(...counts)}…${Math.max(...counts)}`,
    );
    const groups = groupByShard(['a', 'b', 'abc', 'a'], (s) => s);
    assert.deepEqual(groups.flat().sort(), ['a', 'a', 'abc', 'b']);
    assert.ok(groups.every((g) => new Set(g.map(shardOf)).size === 1));
  });

  it('gives the shards distinct Cluster slots, spread over the masters of a 3-master cluster', () => {
    const keys = new RedisKeys('mcp:');
    const slots = Array.from({ length: SHARDS }, (_, shard) => calculateSlot(keys.sessionIndex(shard)));
    assert.equal(new Set(slots).size, SHARDS, 'no two shards share a slot');
    // redis-cli --cluster create splits 16384 slots into three ranges.
    const perMaster = [0, 0, 0];
    for (const slot of slots) perMaster[Math.min(2, Math.floor(slot / 5461))]!++;
    for (const n of perMaster)
      assert.ok(n > SHARDS / 3 - 25 && n < SHARDS / 3 + 25, `${perMaster.join(' / ')}`);
  });
});
