// `mcp-fleet/tasks` on a fleet: the SDK v1's task store and message queue shared by every instance
// (real Redis, three fleets in this process, each its own instance). A task created on A is read on B
// and cancelled on C; once A is gone, its unfinished task reads as failed everywhere — never
// "working" forever. Embedded, the SDK's in-memory stores.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createFleet, type Fleet } from '../../src/index.js';
import { fleetTaskStores, TASK_INSTANCE_STOPPED } from '../../src/tasks/index.js';
import { buildDemoServer } from '../fixtures/demo-server.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateTaskResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../src/redis/keys.js';
import { startInstance, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

const request = { method: 'tools/call', params: { name: 'slow', arguments: {} } };

describe('fleetTaskStores', () => {
  let redis: TestRedis;
  const fleets: Fleet[] = [];

  before(async () => {
    redis = await TestRedis.start();
    const keyPrefix = `tasks-${randomUUID().slice(0, 8)}:`;
    for (const id of ['task-a', 'task-b', 'task-c']) {
      fleets.push(
        createFleet({ server: (ctx) => buildDemoServer(ctx), redis: redis.url, keyPrefix, instanceId: id }),
      );
    }
    await waitFor('all three instances are live', async () =>
      (await Promise.all(fleets.map((f) => f.health()))).every((h) => h.instances === 3),
    );
  });
  after(async () => {
    await Promise.allSettled(fleets.map((f) => f.close()));
    await redis?.stop();
  });

  it('a task created on A is read on B, cancelled on C; its queue is shared too', async () => {
    const [a, b, c] = fleets.map((f) => fleetTaskStores(f));
    const task = await a!.taskStore.createTask({ ttl: 60_000 }, 1, request, 'session-1');
    assert.equal((await b!.taskStore.getTask(task.taskId, 'session-1'))?.status, 'working');
    assert.equal(await b!.taskStore.getTask(task.taskId, 'session-2'), null, 'bound to its session');
    await a!.taskMessageQueue.enqueue(
      task.taskId,
      { type: 'notification', message: { jsonrpc: '2.0', method: 'notifications/progress' }, timestamp: 1 },
      'session-1',
    );
    assert.equal((await c!.taskMessageQueue.dequeue(task.taskId, 'session-1'))?.type, 'notification');
    await c!.taskStore.updateTaskStatus(task.taskId, 'cancelled', 'cancelled by the client', 'session-1');
    const seen = await a!.taskStore.getTask(task.taskId, 'session-1');
    assert.equal(seen?.status, 'cancelled');
    await assert.rejects(
      b!.taskStore.updateTaskStatus(task.taskId, 'working', undefined, 'session-1'),
      /terminal/,
    );
  });

  it('the unfinished task of an instance that is gone reads as failed on every other instance', async () => {
    const stores = fleets.map((f) => fleetTaskStores(f));
    const task = await stores[0]!.taskStore.createTask({ ttl: 60_000 }, 2, request, 'session-1');
    const done = await stores[0]!.taskStore.createTask({ ttl: 60_000 }, 3, request, 'session-1');
    await stores[0]!.taskStore.storeTaskResult(done.taskId, 'completed', { content: [] }, 'session-1');
    await fleets[0]!.close(); // its liveness record goes with it
    const failed = await stores[1]!.taskStore.getTask(task.taskId, 'session-1');
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.statusMessage, TASK_INSTANCE_STOPPED);
    assert.equal((await stores[2]!.taskStore.getTask(task.taskId, 'session-1'))?.status, 'failed');
    assert.equal((await stores[2]!.taskStore.getTask(done.taskId, 'session-1'))?.status, 'completed');
  });

  it('embedded (no Redis): the SDK in-memory stores', async () => {
    const fleet = createFleet({ server: (ctx) => buildDemoServer(ctx) });
    try {
      const { taskStore } = fleetTaskStores(fleet);
      const task = await taskStore.createTask({ ttl: 1000 }, 1, request);
      assert.equal((await taskStore.getTask(task.taskId))?.status, 'working');
    } finally {
      await fleet.close();
    }
  });
});

describe('SDK v1 task tools on 3 instances behind the round-robin proxy', () => {
  const REQUEST = { timeout: 15_000 };
  let redis: TestRedis;
  let instances: Instance[] = [];
  let proxy: Proxy;
  let client: Client;
  let transport: StreamableHTTPClientTransport;
  const keyPrefix = `task-e2e-${randomUUID().slice(0, 8)}:`;

  before(async () => {
    redis = await TestRedis.start();
    instances = await Promise.all(
      [0, 1, 2].map((i) =>
        startInstance({
          entry: 'test/fixtures/task-instance.ts',
          name: `tasks-${i}`,
          env: { REDIS_URL: redis.url, KEY_PREFIX: keyPrefix, INSTANCE_ID: `tasks-${i}` },
        }),
      ),
    );
    proxy = await startProxy(instances.map((i) => i.url));
    client = new Client({ name: 'task-client', version: '1.0.0' });
    transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`));
    await client.connect(transport);
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    await proxy?.close();
    await Promise.allSettled(instances.map((i) => i.kill()));
    await redis?.stop();
  });

  const startTask = async () =>
    (
      await client.request(
        { method: 'tools/call', params: { name: 'research', arguments: { topic: 'fleets' } } },
        CreateTaskResultSchema,
        { ...REQUEST, task: { ttl: 120_000 } },
      )
    ).task.taskId;

  it('created, polled, finished and cancelled across instances; the task of a killed owner reads failed', async () => {
    const finished = await startTask();
    for (let i = 0; i < 3; i++) {
      assert.equal((await client.experimental.tasks.getTask(finished, REQUEST)).status, 'working');
    }
    await client.callTool({ name: 'finish', arguments: { taskId: finished } }, undefined, REQUEST);
    const result = await client.experimental.tasks.getTaskResult(finished, CallToolResultSchema, REQUEST);
    assert.match(JSON.stringify(result.content), /done on tasks-\d/);
    const cancelled = await startTask();
    await client.experimental.tasks.cancelTask(cancelled, REQUEST);
    assert.equal((await client.experimental.tasks.getTask(cancelled, REQUEST)).status, 'cancelled');

    // The session's owner runs the task's work: kill it, and the task reads failed wherever asked.
    const orphan = await startTask();
    const raw = new Redis(redis.url);
    const owner = await raw.hget(new RedisKeys(keyPrefix).session(transport.sessionId!), 'owner');
    await raw.quit();
    const victim = instances.find((i) => i.name === owner);
    assert.ok(victim, `the owner ${owner} is one of the instances`);
    await victim.kill('SIGKILL');
    proxy.setTargets(instances.filter((i) => i !== victim).map((i) => i.url));
    let last = '';
    await waitFor('the orphaned task reads failed', async () => {
      const t = await client.experimental.tasks.getTask(orphan, REQUEST);
      last = `${t.status}: ${t.statusMessage ?? ''}`;
      assert.ok(['working', 'failed'].includes(t.status), last);
      return t.status === 'failed';
    });
    assert.equal(last, `failed: ${TASK_INSTANCE_STOPPED}`);
    assert.equal((await client.experimental.tasks.getTask(finished, REQUEST)).status, 'completed');
  });
});
