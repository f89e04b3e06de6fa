// The Redis ACLs that docs/operations.md tells operators to give mcp-fleet's user — on a standalone
// Redis, and on every node of a Cluster — are enough for the whole fleet (two instances, a session
// forwarded and resumed across them, WAIT on create, DELETE) and for the admin command, and confine it
// to its key prefix and channels. The rules are read from the document itself.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { startInstance, type Instance } from '../helpers/instances.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';
import { TestRedisCluster } from '../helpers/redis-topologies.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PASSWORD = 'acl-test-password';

/** The `ACL SETUSER …` line of docs/operations.md after its `<!-- <marker> -->`, as arguments. */
function documentedAcl(marker: string): string[] {
  const doc = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  const at = doc.indexOf(`<!-- ${marker} -->`);
  assert.ok(at >= 0, `docs/operations.md marks its ACL rule (${marker})`);
  const line = /```text\n(ACL SETUSER [^\n]+)\n```/.exec(doc.slice(at))?.[1];
  assert.ok(line, 'an ACL SETUSER line follows the marker');
  return line
    .split(/\s+/)
    .slice(2)
    .map((arg) => (arg.startsWith('>') ? `>${PASSWORD}` : arg));
}

/** Where the user's rules were applied: how instances and the CLI reach it, and a user client. */
interface Setup {
  env: Record<string, string>;
  cliArgs: string[];
  user(): Redis | Cluster;
  stop(): Promise<void>;
}

async function applyAcl(nodes: Redis[], marker: string): Promise<void> {
  const [user, ...rules] = documentedAcl(marker);
  assert.equal(user, 'mcp-fleet');
  try {
    for (const n of nodes) await n.call('ACL', 'SETUSER', user!, ...rules);
  } finally {
    for (const n of nodes) n.disconnect();
  }
}

const SETUPS: Array<[string, () => Promise<Setup>]> = [
  [
    'standalone',
    async () => {
      const redis = await TestRedis.start();
      await applyAcl([redis.client()], 'acl');
      const url = `redis://mcp-fleet:${PASSWORD}@127.0.0.1:${redis.port}`;
      return {
        env: { REDIS_URL: url },
        cliArgs: ['--redis', url],
        user: () => new Redis(url, { maxRetriesPerRequest: 0 }),
        stop: () => redis.stop(),
      };
    },
  ],
  [
    'Cluster',
    async () => {
      const cluster = await TestRedisCluster.start();
      await applyAcl(
        cluster.seeds.map((s) => new Redis(s.port, s.host)),
        'acl-cluster',
      );
      const auth = { REDIS_USERNAME: 'mcp-fleet', REDIS_PASSWORD: PASSWORD };
      return {
        env: { ...cluster.env, ...auth, REDIS_REPLICAS_ON_CREATE: '1' },
        cliArgs: ['--cluster', cluster.env.REDIS_CLUSTER_NODES!],
        user: () =>
          new Cluster(cluster.seeds, {
            redisOptions: { username: 'mcp-fleet', password: PASSWORD, maxRetriesPerRequest: 0 },
          }),
        stop: () => cluster.stop(),
      };
    },
  ],
];

for (const [where, setUp] of SETUPS)
  describe(`the documented Redis ACL (${where})`, () => {
    let setup: Setup;
    let instances: Instance[];

    before(async () => {
      setup = await setUp();
      const env = { ...setup.env, KEY_PREFIX: 'mcp:' };
      instances = await Promise.all(
        ['acl-a', 'acl-b'].map((id) =>
          startInstance({
            entry: 'test/fixtures/demo-instance.ts',
            name: id,
            env: { ...env, INSTANCE_ID: id },
          }),
        ),
      );
    });
    after(async () => {
      await Promise.all((instances ?? []).map((i) => i.stop()));
      await setup?.stop();
    });

    it('lets the fleet serve, forward, resume and delete sessions', async () => {
      const [a, b] = instances;
      const first = await connectClient(a!.url, { token: 'alice' });
      const id = first.transport.sessionId!;
      assert.equal(
        textOf(await first.client.callTool({ name: 'increment', arguments: { by: 1 } })),
        '{"count":1}',
      );
      // Through the other instance: forwarded over pub/sub to the owner, answered through the event log.
      const second = await connectClient(b!.url, { token: 'alice', sessionId: id });
      assert.equal(
        textOf(await second.client.callTool({ name: 'increment', arguments: { by: 2 } })),
        '{"count":3}',
      );
      const stats = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', ...setup.cliArgs, 'sessions', 'show', id, '--json'],
        { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...setup.env } },
      );
      assert.equal(stats.status, 0, stats.stderr);
      const shown = JSON.parse(stats.stdout) as { record: { owner: string }; memoryBytes: number | null };
      assert.equal(shown.record.owner, 'acl-a');
      assert.ok(shown.memoryBytes !== null, 'MEMORY USAGE is allowed');
      await second.transport.terminateSession();
      await assert.rejects(first.client.callTool({ name: 'whoami', arguments: {} }), /404|Session not found/);
      await Promise.all([first.client.close(), second.client.close()]);
      for (const i of instances) assert.doesNotMatch(i.output(), /NOPERM|NOAUTH|WRONGPASS/, i.output());
    });

    it('keeps the user to its prefix and away from dangerous commands', async () => {
      const user = setup.user();
      try {
        await assert.rejects(user.set('other-app:key', 'x'), /NOPERM/);
        await assert.rejects(user.keys('*'), /NOPERM/);
        await assert.rejects(user.flushall(), /NOPERM/);
        await assert.rejects(user.publish('other-channel', 'x'), /NOPERM/);
        assert.equal(await user.set('mcp:probe', 'x'), 'OK');
      } finally {
        user.disconnect();
      }
    });
  });
