import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import calculateSlot from 'cluster-key-slot';
import { InMemoryTaskMessageQueue, InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks';
import type { Task } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../../src/errors.js';
import type { RedisClient } from '../../src/redis/client.js';
import { connectRedis } from '../../src/redis/connect.js';
import {
  RedisTaskMessageQueue,
  RedisTaskStore,
  TASK_INSTANCE_STOPPED,
  type RedisTaskStoreOptions,
} from '../../src/tasks/redis-task-store.js';
import { scanKeys, TestRedis, useRedisPair } from '../helpers/redis-server.js';
import { TestRedisCluster } from '../helpers/redis-topologies.js';
import { allPages, message, request, result, taskStoreContract } from './suites/task-store.js';

const MAX_TTL = 3_600_000;

/** The ttl a Redis task reports: capped by maxTtlMs, which is also what "no limit" gets. */
const redisTtl = (requested: number | null | undefined) =>
  requested == null || !(requested > 0) ? MAX_TTL : Math.min(requested, MAX_TTL);

const isStoreUnavailable = (err: unknown) => err instanceof FleetError && err.code === 'STORE_UNAVAILABLE';

/** Two instances' stores and queues on two clients of one Redis (or Cluster), with one prefix. */
function redisHarness(
  c1: RedisClient,
  c2: RedisClient,
  prefix: string,
  over: Partial<RedisTaskStoreOptions> = {},
) {
  const opts = { prefix, maxTtlMs: MAX_TTL, isAlive: async () => true, ...over };
  return {
    a: new RedisTaskStore(c1, { instanceId: 'instance-a', ...opts }),
    b: new RedisTaskStore(c2, { instanceId: 'instance-b', ...opts }),
    qa: new RedisTaskMessageQueue(c1, { prefix, maxTtlMs: MAX_TTL }),
    qb: new RedisTaskMessageQueue(c2, { prefix, maxTtlMs: MAX_TTL }),
    ttlOf: redisTtl,
  };
}

describe('the SDK’s InMemoryTaskStore and InMemoryTaskMessageQueue (the reference)', () => {
  taskStoreContract(() => {
    const store = new InMemoryTaskStore();
    const queue = new InMemoryTaskMessageQueue();
    return {
      a: store,
      b: store,
      qa: queue,
      qb: queue,
      ttlOf: (requested) => requested ?? null,
      close: () => store.cleanup(),
    };
  });
});

describe('RedisTaskStore and RedisTaskMessageQueue', () => {
  const rp = useRedisPair();
  taskStoreContract(() => redisHarness(rp.c1, rp.c2, rp.keys.prefix));

  /** A store on instance `instanceId` of client 1 or 2, alive when `alive` holds the instance. */
  const storeOf = (instanceId: string, alive: Set<string>, client: 1 | 2 = 1, over: object = {}) =>
    new RedisTaskStore(client === 1 ? rp.c1 : rp.c2, {
      prefix: rp.keys.prefix,
      instanceId,
      maxTtlMs: MAX_TTL,
      isAlive: async (id) => alive.has(id),
      ...over,
    });

  it('keeps a task and its queue in one hash tag, indexes apart, and every key with a TTL', async () => {
    const { a, qa } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    const k = a.keys;
    const inSession = await a.createTask({ ttl: 60_000 }, 1, request, 'S');
    const plain = await a.createTask({ ttl: null }, 2, request);
    await qa.enqueue(inSession.taskId, message(1), 'S');

    const found = await scanKeys(rp.c1, rp.keys.prefix);
    assert.deepEqual(
      new Set(found),
      new Set([
        k.task(inSession.taskId),
        k.queue(inSession.taskId),
        k.task(plain.taskId),
        k.sessionTasks('S'),
        k.sessionTasks(undefined),
        k.allTasks(),
      ]),
    );
    assert.equal(k.task(inSession.taskId), `${rp.keys.prefix}{t:${inSession.taskId}}:task`);
    assert.equal(k.queue(inSession.taskId), `${rp.keys.prefix}{t:${inSession.taskId}}:queue`);
    assert.equal(k.sessionTasks('S'), `${rp.keys.prefix}{ts:S}:tasks`);
    assert.equal(k.sessionTasks(undefined), `${rp.keys.prefix}{ts:-}:tasks`);
    assert.equal(calculateSlot(k.task(inSession.taskId)), calculateSlot(k.queue(inSession.taskId)));

    for (const key of found) {
      const pttl = await rp.c1.pttl(key);
      assert.ok(pttl > 0, `${key} has a TTL (PTTL ${pttl})`);
    }
    const pttl = (key: string) => rp.c1.pttl(key);
    assert.ok((await pttl(k.task(inSession.taskId))) <= 60_000);
    // The task's TTL read first: the queue expires with the task, so a later read can only be lower.
    const taskLeft = await pttl(k.task(inSession.taskId));
    assert.ok((await pttl(k.queue(inSession.taskId))) <= taskLeft);
    const nullTtl = await pttl(k.task(plain.taskId));
    assert.ok(nullTtl > MAX_TTL - 60_000 && nullTtl <= MAX_TTL, `ttl: null lives maxTtlMs (PTTL ${nullTtl})`);
    // An index lives as long as its longest-lived task can: twice its TTL (the terminal status restarts it).
    assert.ok((await pttl(k.sessionTasks('S'))) > 60_000 && (await pttl(k.sessionTasks('S'))) <= 120_000);
    assert.ok((await pttl(k.allTasks())) > 2 * MAX_TTL - 60_000);
  });

  it('reports the TTL it uses: ttl null, none, 0 or over maxTtlMs get maxTtlMs', async () => {
    const { a } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    for (const ttl of [null, undefined, 0, -5, 10 * MAX_TTL]) {
      const task = await a.createTask(ttl === undefined ? {} : { ttl }, 1, request);
      assert.equal(task.ttl, MAX_TTL, `ttl ${ttl}`);
      assert.ok((await rp.c1.pttl(a.keys.task(task.taskId))) > MAX_TTL - 60_000);
    }
    const exact = await a.createTask({ ttl: 1234.2 }, 1, request);
    assert.equal(exact.ttl, 1235, 'whole ms');
    assert.ok((await rp.c1.pttl(a.keys.task(exact.taskId))) <= 1235);
  });

  it('a result or terminal status restarts the TTL of the task and of its queue; other updates do not', async () => {
    const { a, b, qa } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    const k = a.keys;
    const age = async (taskId: string) => {
      // As if the task were 59 s old: only 1 s of its 60 s left.
      await rp.c1.pexpire(k.task(taskId), 1000);
      await rp.c1.pexpire(k.queue(taskId), 1000);
    };
    const left = async (taskId: string) => [
      await rp.c1.pttl(k.task(taskId)),
      await rp.c1.pttl(k.queue(taskId)),
    ];

    const done = await a.createTask({ ttl: 60_000 }, 1, request);
    await qa.enqueue(done.taskId, message(0));
    await age(done.taskId);
    await b.updateTaskStatus(done.taskId, 'input_required', 'Asking');
    for (const ms of await left(done.taskId)) assert.ok(ms > 0 && ms <= 1000, `not restarted: ${ms}`);
    await b.storeTaskResult(done.taskId, 'completed', result('ok'));
    for (const ms of await left(done.taskId)) assert.ok(ms > 50_000 && ms <= 60_000, `restarted: ${ms}`);

    const cancelled = await a.createTask({ ttl: 60_000 }, 2, request);
    await qa.enqueue(cancelled.taskId, message(0));
    await age(cancelled.taskId);
    await b.updateTaskStatus(cancelled.taskId, 'cancelled', 'Client cancelled task execution.');
    for (const ms of await left(cancelled.taskId)) assert.ok(ms > 50_000 && ms <= 60_000, `restarted: ${ms}`);
  });

  it('a queue expires with its task; the queue of a task it does not know lives maxTtlMs', async () => {
    const { a, qa, qb } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    const task = await a.createTask({ ttl: 5000 }, 1, request);
    await qa.enqueue(task.taskId, message(0));
    // The task's TTL read first: the queue expires with the task, so a later read can only be lower.
    const taskTtl = await rp.c1.pttl(a.keys.task(task.taskId));
    const queueTtl = await rp.c1.pttl(a.keys.queue(task.taskId));
    assert.ok(queueTtl > 0 && queueTtl <= taskTtl, `queue PTTL ${queueTtl}, task PTTL ${taskTtl}`);

    const unknown = '0'.repeat(32);
    await qb.enqueue(unknown, message(1));
    const orphanTtl = await rp.c1.pttl(a.keys.queue(unknown));
    assert.ok(orphanTtl > MAX_TTL - 60_000 && orphanTtl <= MAX_TTL, `PTTL ${orphanTtl}`);
    assert.deepEqual(await qa.dequeueAll(unknown), [message(1)]);
    assert.equal(await rp.c1.exists(a.keys.queue(unknown)), 0, 'drained: no key left');
  });

  it('a running task whose instance is not alive is failed when read, on every instance, for good', async () => {
    const alive = new Set(['ia', 'ib']);
    const a = storeOf('ia', alive, 1);
    const b = storeOf('ib', alive, 2);
    const working = await a.createTask({ ttl: 60_000 }, 1, request, 'S');
    const asking = await a.createTask({ ttl: 60_000 }, 2, request, 'S');
    await a.updateTaskStatus(asking.taskId, 'input_required', 'Waiting for the user', 'S');
    const completed = await a.createTask({ ttl: 60_000 }, 3, request, 'S');
    await a.storeTaskResult(completed.taskId, 'completed', result('done'), 'S');
    const onB = await b.createTask({ ttl: 60_000 }, 4, request, 'S');
    assert.equal((await b.getTask(working.taskId, 'S'))?.status, 'working', 'its instance is alive');

    alive.delete('ia');
    const stopped = Date.now();
    const failed = await b.getTask(working.taskId, 'S');
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.statusMessage, TASK_INSTANCE_STOPPED);
    assert.ok(Date.parse(failed.lastUpdatedAt) >= stopped - 1000);
    assert.deepEqual(await b.getTask(working.taskId, 'S'), failed, 'stored, not computed per read');

    const listed = new Map((await b.listTasks(undefined, 'S')).tasks.map((t) => [t.taskId, t]));
    assert.equal(listed.get(asking.taskId)?.status, 'failed', 'input_required fails too');
    assert.equal(listed.get(asking.taskId)?.statusMessage, TASK_INSTANCE_STOPPED);
    assert.equal(listed.get(completed.taskId)?.status, 'completed', 'an ended task stays as it ended');
    assert.deepEqual(await b.getTaskResult(completed.taskId, 'S'), result('done'));
    assert.equal(listed.get(onB.taskId)?.status, 'working', 'a live instance’s task is untouched');
    assert.deepEqual(await a.getTask(asking.taskId, 'S'), listed.get(asking.taskId));

    // The instance comes back (or was only frozen): it cannot revive or complete its failed tasks.
    await assert.rejects(a.storeTaskResult(working.taskId, 'completed', result('late'), 'S'), {
      message: `Cannot store result for task ${working.taskId} in terminal status 'failed'. Task results can only be stored once.`,
    });
    await assert.rejects(
      a.updateTaskStatus(asking.taskId, 'working', undefined, 'S'),
      /terminal status 'failed'/,
    );
    await assert.rejects(b.getTaskResult(working.taskId, 'S'), {
      message: `Task ${working.taskId} has no result stored`,
    });
    // A failed task's TTL restarts, as for any terminal status.
    assert.ok((await rp.c1.pttl(a.keys.task(working.taskId))) > 50_000);
  });

  it('a store does not ask about its own instance, and asks once per instance per listing', async () => {
    const asked: string[] = [];
    const isAlive = async (id: string) => {
      asked.push(id);
      return true;
    };
    const a = storeOf('ia', new Set(), 1, { isAlive: async () => false });
    const b = storeOf('ib', new Set(), 2, { isAlive });
    const own = await a.createTask({}, 1, request);
    assert.equal((await a.getTask(own.taskId))?.status, 'working', 'running here: alive');
    for (let i = 0; i < 4; i++) await a.createTask({}, i, request);
    await b.createTask({}, 9, request);
    assert.equal((await b.listTasks()).tasks.length, 6);
    assert.deepEqual(asked, ['ia']);
    await a.storeTaskResult(own.taskId, 'completed', result('ok'));
    asked.length = 0;
    await b.getTask(own.taskId);
    assert.deepEqual(asked, [], 'an ended task needs no liveness');
  });

  it('a task that ends while its instance is checked is not failed (the check is atomic)', async () => {
    const alive = new Set(['ib']);
    const a = storeOf('ia', alive, 1);
    const task = await a.createTask({}, 1, request);
    const b = storeOf('ib', alive, 2, {
      isAlive: async () => {
        // The instance completes the task just before it is found dead.
        await a.storeTaskResult(task.taskId, 'completed', result('just in time'));
        return false;
      },
    });
    const seen = await b.getTask(task.taskId);
    assert.equal(seen?.status, 'completed');
    assert.equal(seen?.statusMessage, undefined);
    assert.deepEqual(await b.getTaskResult(task.taskId), result('just in time'));
  });

  it('a liveness check that fails or hangs fails the read with STORE_UNAVAILABLE, and changes nothing', async () => {
    const a = storeOf('ia', new Set(), 1);
    const task = await a.createTask({}, 1, request);
    const failing = storeOf('ib', new Set(), 2, {
      isAlive: async () => {
        throw new Error('registry down');
      },
    });
    await assert.rejects(failing.getTask(task.taskId), isStoreUnavailable);
    const hanging = storeOf('ib', new Set(), 2, {
      commandTimeoutMs: 200,
      isAlive: () => new Promise<boolean>(() => {}),
    });
    const started = Date.now();
    await assert.rejects(hanging.listTasks(), isStoreUnavailable);
    assert.ok(Date.now() - started < 5000, 'bounded by commandTimeoutMs');
    assert.equal((await a.getTask(task.taskId))?.status, 'working');
  });

  it('prunes the index entries of expired tasks when listing, and pages past them', async () => {
    const { a, b } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    const made: Task[] = [];
    for (let i = 0; i < 25; i++) made.push(await a.createTask({}, i, request, 'S'));
    // Five tasks of the first page, and the last one, expire (their keys go, as on their TTL).
    const gone = [1, 2, 3, 5, 8, 24].map((i) => made[i]!.taskId);
    await rp.c1.del(...gone.map((id) => a.keys.task(id)));
    const live = made.filter((t) => !gone.includes(t.taskId));

    const pages = await allPages(b, 'S');
    assert.deepEqual(
      pages.map((p) => p.length),
      [10, 9],
    );
    assert.deepEqual(pages.flat(), live);
    assert.deepEqual(
      await rp.c1.zrange(a.keys.sessionTasks('S'), 0, -1),
      live.map((t) => t.taskId),
    );
    assert.deepEqual((await allPages(a)).flat(), live);
    assert.deepEqual(
      await rp.c1.zrange(a.keys.allTasks(), 0, -1),
      live.map((t) => t.taskId),
    );
    // Many expired tasks in a row: read in growing batches, all pruned.
    const more: Task[] = [];
    for (let i = 0; i < 120; i++) more.push(await a.createTask({}, i, request, 'S'));
    await rp.c1.del(...more.slice(0, 115).map((t) => a.keys.task(t.taskId)));
    const rest = (await allPages(b, 'S')).flat();
    assert.deepEqual(rest, [...live, ...more.slice(115)]);
    assert.equal(await rp.c1.zcard(a.keys.sessionTasks('S')), live.length + 5);
    // A cursor whose task expired is invalid, as in the SDK's store.
    await rp.c1.del(a.keys.task(live[9]!.taskId));
    await assert.rejects(b.listTasks(live[9]!.taskId, 'S'), {
      message: `Invalid cursor: ${live[9]!.taskId}`,
    });
  });

  it('pages correctly through tasks created in the same ms on several instances', async () => {
    const { a, b } = redisHarness(rp.c1, rp.c2, rp.keys.prefix);
    const made: Task[] = [];
    for (let i = 0; i < 13; i++)
      made.push(await (i % 2 ? a : b).createTask({}, i, request, i % 3 ? 'S' : undefined));
    // Every entry gets one score, as if all were created in one ms by different instances.
    for (const t of made) {
      const index = a.keys.sessionTasks((await rp.c1.hget(a.keys.task(t.taskId), 'session')) ?? undefined);
      await rp.c1.zadd(index, 1_700_000_000_000, t.taskId);
      await rp.c1.zadd(a.keys.allTasks(), 1_700_000_000_000, t.taskId);
    }
    const byId = [...made].sort((x, y) => (x.taskId < y.taskId ? -1 : 1)).map((t) => t.taskId);
    for (const sessionId of ['S', undefined]) {
      const pages = await allPages(b, sessionId);
      assert.deepEqual(
        pages.map((p) => p.length),
        [10, 3],
      );
      assert.deepEqual(ids(pages.flat()), byId, `ties ordered by id (${sessionId ?? 'no session'})`);
    }
  });

  it('fails fast with STORE_UNAVAILABLE when Redis does not answer', async () => {
    const server = await TestRedis.start();
    const client = server.client();
    try {
      const opts = { prefix: TestRedis.prefix(), commandTimeoutMs: 300 };
      const store = new RedisTaskStore(client, { ...opts, instanceId: 'ia', isAlive: async () => true });
      const queue = new RedisTaskMessageQueue(client, opts);
      const task = await store.createTask({}, 1, request);
      server.pause();
      const started = Date.now();
      await assert.rejects(store.getTask(task.taskId), isStoreUnavailable);
      await assert.rejects(store.createTask({}, 2, request), isStoreUnavailable);
      await assert.rejects(store.updateTaskStatus(task.taskId, 'cancelled'), isStoreUnavailable);
      await assert.rejects(store.listTasks(), isStoreUnavailable);
      await assert.rejects(queue.enqueue(task.taskId, message(0)), isStoreUnavailable);
      await assert.rejects(queue.dequeueAll(task.taskId), isStoreUnavailable);
      assert.ok(Date.now() - started < 6 * 300 + 2000, 'each call bounded by commandTimeoutMs');
      server.resume();
      assert.equal((await store.getTask(task.taskId))?.taskId, task.taskId);
    } finally {
      client.disconnect();
      await server.stop();
    }
  });
});

describe('RedisTaskStore and RedisTaskMessageQueue on Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let c1: RedisClient;
  let c2: RedisClient;
  let prefix: string;
  const open = async () => {
    const { client } = connectRedis({ nodes: cluster.seeds });
    if (client.status !== 'ready') await once(client, 'ready');
    return client;
  };
  before(async () => {
    cluster = await TestRedisCluster.start();
    c1 = await open();
    c2 = await open();
  });
  after(async () => {
    c1?.disconnect();
    c2?.disconnect();
    await cluster?.stop();
  });
  beforeEach(() => {
    prefix = TestRedis.prefix();
  });
  taskStoreContract(() => redisHarness(c1, c2, prefix));
});

function ids(tasks: Task[]): string[] {
  return tasks.map((t) => t.taskId);
}
