// FleetAdmin.listSessions merges the 256 shard indexes into one order (expiry, then id, descending):
// paging with any page size shows every session exactly once, in that order, ties included.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FleetAdmin } from '../../src/cli/admin.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { RedisSessionStore } from '../../src/store/redis-session-store.js';
import { TestRedis } from '../helpers/redis-server.js';

describe('FleetAdmin.listSessions across shards', () => {
  let redis: TestRedis;
  let client: Redis;
  const prefix = TestRedis.prefix();
  const keys = new RedisKeys(prefix);
  const ids: string[] = [];

  before(async () => {
    redis = await TestRedis.start();
    client = redis.client();
    const store = new RedisSessionStore(client, keys, { idleMs: 3_600_000, maxLifetimeMs: 86_400_000 });
    for (let i = 0; i < 300; i++) {
      const id = randomBytes(16).toString('base64url');
      ids.push(id);
      await store.create({
        id,
        principal: i % 3 === 0 ? 'alice' : 'bob',
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
    }
    // Ties: 120 sessions share one expiry (same millisecond), many of them in the same shards.
    const tie = Date.now() + 1_800_000;
    for (const id of ids.slice(0, 120)) await client.zadd(keys.sessionIndexOf(id), tie, id);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  /** Every page, following cursors. */
  async function all(admin: FleetAdmin, limit: number, principal?: string) {
    const seen: Array<{ id: string; expiresAt: number }> = [];
    let cursor: string | undefined;
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 1000, 'paging ends');
      const page = await admin.listSessions({ limit, cursor, principal });
      assert.ok(page.sessions.length <= limit);
      seen.push(...page.sessions.map((s) => ({ id: s.id, expiresAt: s.expiresAt })));
      if (!page.next) return seen;
      cursor = page.next;
    }
  }

  for (const limit of [1, 7, 50, 1000]) {
    it(`pages of ${limit}: every session once, by expiry then id, descending`, async () => {
      const admin = new FleetAdmin(client, prefix);
      const seen = await all(admin, limit);
      assert.equal(new Set(seen.map((s) => s.id)).size, seen.length, 'no session twice');
      assert.deepEqual(new Set(seen.map((s) => s.id)), new Set(ids));
      for (let i = 1; i < seen.length; i++) {
        const [a, b] = [seen[i - 1]!, seen[i]!];
        assert.ok(a.expiresAt > b.expiresAt || (a.expiresAt === b.expiresAt && a.id > b.id), `order at ${i}`);
      }
    });
  }

  it('a filter pages over the matching sessions only', async () => {
    const seen = await all(new FleetAdmin(client, prefix), 9, 'alice');
    assert.deepEqual(new Set(seen.map((s) => s.id)), new Set(ids.filter((_, i) => i % 3 === 0)));
  });
});
