import { it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type {
  QueuedMessage,
  TaskMessageQueue,
  TaskStore,
} from '@modelcontextprotocol/sdk/experimental/tasks';
import type { Request, Result, Task } from '@modelcontextprotocol/sdk/types.js';
import { untilGone } from './expiry.js';

/**
 * Two instances' views of one task store and one task message queue (for the SDK's in-memory
 * classes, the same objects twice).
 */
export interface TaskStoreHarness {
  a: TaskStore;
  b: TaskStore;
  qa: TaskMessageQueue;
  qb: TaskMessageQueue;
  /** The `ttl` a task created with `ttl` reports (a store may cap it, and give `null` a limit). */
  ttlOf(requested: number | null | undefined): number | null;
  /** Releases what the harness holds (the in-memory store's timers). */
  close?(): void;
}

/** The request a task is created for. */
export const request: Request = { method: 'tools/call', params: { name: 'slow', arguments: {} } };

/** A result to store. */
export const result = (text: string): Result => ({ content: [{ type: 'text', text }] });

/** One queued message of each kind, `i` telling them apart. */
export function message(i: number): QueuedMessage {
  switch (i % 4) {
    case 0:
      return {
        type: 'request',
        timestamp: i,
        message: { jsonrpc: '2.0', id: i, method: 'elicitation/create', params: { n: i } },
      };
    case 1:
      return {
        type: 'notification',
        timestamp: i,
        message: { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: i } },
      };
    case 2:
      return { type: 'response', timestamp: i, message: { jsonrpc: '2.0', id: i, result: { n: i } } };
    default:
      return {
        type: 'error',
        timestamp: i,
        message: { jsonrpc: '2.0', id: i, error: { code: -32000, message: `e${i}` } },
      };
  }
}

/** Every page of `store.listTasks` for `sessionId`, checking the cursor of each. */
export async function allPages(store: TaskStore, sessionId?: string): Promise<Task[][]> {
  const pages: Task[][] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listTasks(cursor, sessionId);
    assert.ok(page.tasks.length <= 10, `a page holds at most 10 tasks, not ${page.tasks.length}`);
    if (page.nextCursor !== undefined) {
      assert.equal(page.tasks.length, 10, 'only a full page has a next page');
      assert.equal(page.nextCursor, page.tasks[9]?.taskId, 'the cursor is the last task of the page');
    }
    pages.push(page.tasks);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return pages;
}

const notFound = (taskId: string) => ({ message: `Task with ID ${taskId} not found` });
const terminalUpdate = (taskId: string, from: string, to: string) => ({
  message: `Cannot update task ${taskId} from terminal status '${from}' to '${to}'. Terminal states (completed, failed, cancelled) cannot transition to other states.`,
});
const storedOnce = (taskId: string, status: string) => ({
  message: `Cannot store result for task ${taskId} in terminal status '${status}'. Task results can only be stored once.`,
});
const ids = (tasks: Task[]) => tasks.map((t) => t.taskId);

/**
 * The contract of the SDK's `TaskStore` and `TaskMessageQueue` (v1 SDK, experimental tasks), as
 * its `InMemoryTaskStore` and `InMemoryTaskMessageQueue` behave: what a client sees through
 * `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel` whichever instance serves it.
 */
export function taskStoreContract(make: () => TaskStoreHarness): void {
  const open = (t: TestContext): TaskStoreHarness => {
    const h = make();
    t.after(() => h.close?.());
    return h;
  };

  it('creates a working task that another instance reads back as created', async (t) => {
    const { a, b, ttlOf } = open(t);
    const before = Date.now();
    const task = await a.createTask({ ttl: 60_000, pollInterval: 250 }, 1, request, 'S');
    const after = Date.now();
    assert.match(task.taskId, /^[0-9a-f]{32}$/);
    assert.deepEqual(task, {
      taskId: task.taskId,
      status: 'working',
      ttl: ttlOf(60_000),
      createdAt: task.createdAt,
      lastUpdatedAt: task.createdAt,
      pollInterval: 250,
    });
    assert.equal(new Date(task.createdAt).toISOString(), task.createdAt, 'an ISO 8601 time');
    const created = Date.parse(task.createdAt);
    assert.ok(created >= before - 1000 && created <= after + 1000, `created at ${task.createdAt}`);
    assert.deepEqual(await b.getTask(task.taskId, 'S'), task);
    assert.deepEqual(await b.getTask(task.taskId), task, 'no session: not restricted');

    const plain = await b.createTask({}, 2, request);
    assert.notEqual(plain.taskId, task.taskId);
    assert.equal(plain.pollInterval, 1000, 'the default poll interval');
    assert.equal(plain.ttl, ttlOf(undefined));
    assert.equal((await a.createTask({ ttl: null }, 3, request)).ttl, ttlOf(null));
    assert.deepEqual(await a.getTask(plain.taskId), plain);
  });

  it('an unknown task: null from getTask, an error from the others', async (t) => {
    const { a } = open(t);
    const id = 'f'.repeat(32);
    assert.equal(await a.getTask(id), null);
    assert.equal(await a.getTask(id, 'S'), null);
    await assert.rejects(a.getTaskResult(id), notFound(id));
    await assert.rejects(a.storeTaskResult(id, 'completed', result('x')), notFound(id));
    await assert.rejects(a.updateTaskStatus(id, 'cancelled'), notFound(id));
    await assert.rejects(a.listTasks(id), { message: `Invalid cursor: ${id}` });
  });

  it('status updates on one instance are seen on the other; a message stays until replaced', async (t) => {
    const { a, b } = open(t);
    const task = await a.createTask({}, 1, request, 'S');
    await b.updateTaskStatus(task.taskId, 'input_required', 'Waiting for the user', 'S');
    const asking = await a.getTask(task.taskId, 'S');
    assert.equal(asking?.status, 'input_required');
    assert.equal(asking?.statusMessage, 'Waiting for the user');
    assert.ok(Date.parse(asking.lastUpdatedAt) >= Date.parse(task.createdAt));
    assert.equal(asking.createdAt, task.createdAt);

    await a.updateTaskStatus(task.taskId, 'working', undefined, 'S');
    const resumed = await b.getTask(task.taskId);
    assert.equal(resumed?.status, 'working');
    assert.equal(resumed?.statusMessage, 'Waiting for the user', 'no message: the last one stays');
    assert.ok(Date.parse(resumed.lastUpdatedAt) >= Date.parse(asking.lastUpdatedAt));

    await b.updateTaskStatus(task.taskId, 'working', 'Half way');
    assert.equal((await a.getTask(task.taskId))?.statusMessage, 'Half way');
    assert.equal((await a.getTask(task.taskId))?.status, 'working');
  });

  it('a result is stored once, on any instance, and read on any other', async (t) => {
    const { a, b } = open(t);
    const task = await a.createTask({}, 1, request, 'S');
    await assert.rejects(b.getTaskResult(task.taskId, 'S'), {
      message: `Task ${task.taskId} has no result stored`,
    });
    await b.storeTaskResult(task.taskId, 'completed', result('done'), 'S');
    const done = await a.getTask(task.taskId, 'S');
    assert.equal(done?.status, 'completed');
    assert.ok(Date.parse(done.lastUpdatedAt) >= Date.parse(task.createdAt));
    assert.deepEqual(await a.getTaskResult(task.taskId, 'S'), result('done'));
    assert.deepEqual(await b.getTaskResult(task.taskId), result('done'));

    await assert.rejects(
      a.storeTaskResult(task.taskId, 'failed', result('again'), 'S'),
      storedOnce(task.taskId, 'completed'),
    );
    assert.deepEqual(await b.getTaskResult(task.taskId, 'S'), result('done'), 'the first result stays');
    assert.deepEqual(await b.getTask(task.taskId, 'S'), done);

    const failing = await b.createTask({}, 2, request);
    const error: Result = { content: [{ type: 'text', text: 'boom' }], isError: true };
    await a.storeTaskResult(failing.taskId, 'failed', error);
    assert.equal((await b.getTask(failing.taskId))?.status, 'failed');
    assert.deepEqual(await b.getTaskResult(failing.taskId), error);
  });

  it('a terminal task cannot go back to working, nor change in any other way', async (t) => {
    const { a, b } = open(t);
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      const task = await a.createTask({}, 1, request, 'S');
      await b.updateTaskStatus(task.taskId, status, `ended: ${status}`, 'S');
      const ended = await a.getTask(task.taskId, 'S');
      assert.equal(ended?.status, status);
      assert.equal(ended?.statusMessage, `ended: ${status}`);

      await assert.rejects(
        a.updateTaskStatus(task.taskId, 'working', undefined, 'S'),
        terminalUpdate(task.taskId, status, 'working'),
      );
      await assert.rejects(
        b.updateTaskStatus(task.taskId, 'input_required', 'again'),
        terminalUpdate(task.taskId, status, 'input_required'),
      );
      await assert.rejects(
        a.updateTaskStatus(task.taskId, 'cancelled', 'again', 'S'),
        terminalUpdate(task.taskId, status, 'cancelled'),
      );
      await assert.rejects(
        b.storeTaskResult(task.taskId, 'completed', result('late'), 'S'),
        storedOnce(task.taskId, status),
      );
      assert.deepEqual(await b.getTask(task.taskId, 'S'), ended, 'nothing changed');
      await assert.rejects(a.getTaskResult(task.taskId, 'S'), {
        message: `Task ${task.taskId} has no result stored`,
      });
    }
  });

  it('a task cancelled through one instance is cancelled for the one running it', async (t) => {
    const { a, b, qa, qb } = open(t);
    const task = await a.createTask({ ttl: 60_000 }, 1, request, 'S');
    await qa.enqueue(task.taskId, message(0), 'S');
    // As the SDK's tasks/cancel handler: look, cancel, drop the queue, look again.
    assert.equal((await b.getTask(task.taskId, 'S'))?.status, 'working');
    await b.updateTaskStatus(task.taskId, 'cancelled', 'Client cancelled task execution.', 'S');
    assert.deepEqual(await qb.dequeueAll(task.taskId, 'S'), [message(0)]);
    const cancelled = await b.getTask(task.taskId, 'S');
    assert.equal(cancelled?.status, 'cancelled');
    assert.equal(cancelled?.statusMessage, 'Client cancelled task execution.');
    // The instance running it finds out, and cannot complete it any more.
    assert.deepEqual(await a.getTask(task.taskId, 'S'), cancelled);
    await assert.rejects(
      a.storeTaskResult(task.taskId, 'completed', result('too late'), 'S'),
      storedOnce(task.taskId, 'cancelled'),
    );
    assert.deepEqual(await qa.dequeueAll(task.taskId, 'S'), []);
  });

  it('a task created in a session is invisible to other sessions; one created without a session is not', async (t) => {
    const { a, b } = open(t);
    const mine = await a.createTask({}, 1, request, 'S1');
    const shared = await a.createTask({}, 2, request);

    assert.equal(await b.getTask(mine.taskId, 'S2'), null);
    await assert.rejects(b.updateTaskStatus(mine.taskId, 'cancelled', 'no', 'S2'), notFound(mine.taskId));
    await assert.rejects(
      b.storeTaskResult(mine.taskId, 'completed', result('no'), 'S2'),
      notFound(mine.taskId),
    );
    await assert.rejects(b.getTaskResult(mine.taskId, 'S2'), notFound(mine.taskId));
    assert.deepEqual(await b.getTask(mine.taskId, 'S1'), mine, 'untouched by the other session');
    assert.deepEqual(await b.getTask(mine.taskId), mine, 'a caller without a session is not restricted');

    await a.storeTaskResult(mine.taskId, 'completed', result('mine'), 'S1');
    await assert.rejects(b.getTaskResult(mine.taskId, 'S2'), notFound(mine.taskId));
    assert.deepEqual(await b.getTaskResult(mine.taskId, 'S1'), result('mine'));

    assert.deepEqual(await b.getTask(shared.taskId, 'S2'), shared);
    await b.updateTaskStatus(shared.taskId, 'input_required', undefined, 'S2');
    assert.equal((await a.getTask(shared.taskId, 'S1'))?.status, 'input_required');

    assert.deepEqual(ids((await b.listTasks(undefined, 'S2')).tasks), [shared.taskId]);
    assert.deepEqual(ids((await b.listTasks(undefined, 'S1')).tasks), [mine.taskId, shared.taskId]);
    assert.deepEqual(ids((await a.listTasks()).tasks), [mine.taskId, shared.taskId]);
    await assert.rejects(b.listTasks(mine.taskId, 'S2'), { message: `Invalid cursor: ${mine.taskId}` });
    assert.deepEqual(ids((await b.listTasks(mine.taskId, 'S1')).tasks), [shared.taskId]);
  });

  it('listTasks pages 10 at a time, oldest first, with the last task id as cursor', async (t) => {
    const { a, b } = open(t);
    const sessionOf = (i: number) => [`S`, undefined, 'T'][i % 3];
    const created: Array<{ task: Task; sessionId: string | undefined }> = [];
    for (let i = 0; i < 23; i++) {
      const sessionId = sessionOf(i);
      created.push({ task: await a.createTask({ pollInterval: 100 + i }, i, request, sessionId), sessionId });
    }
    const expected = (sessionId?: string) =>
      created
        .filter((c) => sessionId === undefined || c.sessionId === undefined || c.sessionId === sessionId)
        .map((c) => c.task);

    const everyone = await allPages(b);
    assert.deepEqual(
      everyone.map((p) => p.length),
      [10, 10, 3],
    );
    assert.deepEqual(everyone.flat(), expected());
    const s = await allPages(b, 'S');
    assert.deepEqual(
      s.map((p) => p.length),
      [10, 6],
    );
    assert.deepEqual(s.flat(), expected('S'));
    const tPages = await allPages(a, 'T');
    assert.deepEqual(
      tPages.map((p) => p.length),
      [10, 5],
    );
    assert.deepEqual(tPages.flat(), expected('T'));
    assert.deepEqual(ids((await b.listTasks(undefined, 'nobody')).tasks), ids(expected('nobody')));

    // A cursor from the middle resumes right after it.
    const fifth = expected('S')[4]!;
    assert.deepEqual(ids((await a.listTasks(fifth.taskId, 'S')).tasks), ids(expected('S').slice(5, 15)));
    await assert.rejects(b.listTasks(created[2]!.task.taskId, 'S'), {
      message: `Invalid cursor: ${created[2]!.task.taskId}`,
    });
    await assert.rejects(b.listTasks('no-such-task'), { message: 'Invalid cursor: no-such-task' });
  });

  it('a page of exactly 10 tasks has no next cursor; the eleventh makes one', async (t) => {
    const { a, b } = open(t);
    const made: Task[] = [];
    assert.deepEqual(await b.listTasks(undefined, 'S'), { tasks: [], nextCursor: undefined });
    for (let i = 0; i < 10; i++) made.push(await a.createTask({}, i, request, 'S'));
    const full = await b.listTasks(undefined, 'S');
    assert.deepEqual(ids(full.tasks), ids(made));
    assert.equal(full.nextCursor, undefined);
    made.push(await a.createTask({}, 10, request, 'S'));
    const first = await b.listTasks(undefined, 'S');
    assert.equal(first.nextCursor, made[9]!.taskId);
    assert.deepEqual(await b.listTasks(first.nextCursor, 'S'), { tasks: [made[10]], nextCursor: undefined });
  });

  it('lists the tasks of every instance, on every instance, with their current status', async (t) => {
    const { a, b } = open(t);
    const made: Task[] = [];
    for (let i = 0; i < 6; i++) made.push(await (i % 2 === 0 ? a : b).createTask({}, i, request, 'S'));
    await b.updateTaskStatus(made[0]!.taskId, 'input_required', 'Asking', 'S');
    await a.storeTaskResult(made[3]!.taskId, 'completed', result('3'), 'S');
    const fromA = (await a.listTasks(undefined, 'S')).tasks;
    assert.deepEqual((await b.listTasks(undefined, 'S')).tasks, fromA);
    assert.deepEqual(new Set(ids(fromA)), new Set(ids(made)));
    const times = fromA.map((x) => Date.parse(x.createdAt));
    assert.deepEqual(
      times,
      [...times].sort((x, y) => x - y),
      'oldest first',
    );
    for (const task of fromA) assert.deepEqual(task, await b.getTask(task.taskId, 'S'));
    assert.equal(fromA.find((x) => x.taskId === made[0]!.taskId)?.status, 'input_required');
    assert.equal(fromA.find((x) => x.taskId === made[3]!.taskId)?.status, 'completed');
  });

  it('a task is gone, on every instance, once its ttl has passed', async (t) => {
    const { a, b } = open(t);
    const short = await a.createTask({ ttl: 300 }, 1, request, 'S');
    const long = await a.createTask({ ttl: 60_000 }, 2, request, 'S');
    assert.equal(short.ttl, 300);
    await untilGone('the short-lived task', async () => (await b.getTask(short.taskId, 'S')) === null);
    assert.deepEqual(ids((await b.listTasks(undefined, 'S')).tasks), [long.taskId]);
    assert.deepEqual(ids((await a.listTasks()).tasks), [long.taskId]);
    await assert.rejects(b.getTaskResult(short.taskId, 'S'), notFound(short.taskId));
    await assert.rejects(b.updateTaskStatus(short.taskId, 'cancelled', 'x', 'S'), notFound(short.taskId));
    await assert.rejects(a.listTasks(short.taskId, 'S'), { message: `Invalid cursor: ${short.taskId}` });
    assert.deepEqual(await a.getTask(long.taskId, 'S'), long);
  });

  it('a task queue is first in, first out across instances, whatever session asks', async (t) => {
    const { a, qa, qb } = open(t);
    const task = await a.createTask({ ttl: 60_000 }, 1, request, 'S');
    const other = await a.createTask({ ttl: 60_000 }, 2, request, 'S');
    assert.equal(await qa.dequeue(task.taskId, 'S'), undefined);
    for (let i = 0; i < 4; i++) await (i % 2 === 0 ? qa : qb).enqueue(task.taskId, message(i), 'S');
    await qb.enqueue(task.taskId, message(4));
    await qa.enqueue(other.taskId, message(9), 'S');

    assert.deepEqual(await qb.dequeue(task.taskId, 'S'), message(0));
    assert.deepEqual(await qa.dequeue(task.taskId, 'S'), message(1));
    assert.deepEqual(await qa.dequeue(task.taskId, 'another'), message(2), 'the queue is the task’s');
    assert.deepEqual(await qb.dequeueAll(task.taskId), [message(3), message(4)]);
    assert.equal(await qa.dequeue(task.taskId, 'S'), undefined);
    assert.deepEqual(await qa.dequeueAll(task.taskId, 'S'), []);
    assert.deepEqual(await qb.dequeueAll(other.taskId, 'S'), [message(9)], 'queues are per task');
  });

  it('enqueue with maxSize throws once the queue holds that many, and queues nothing', async (t) => {
    const { a, qa, qb } = open(t);
    const task = await a.createTask({ ttl: 60_000 }, 1, request);
    await qa.enqueue(task.taskId, message(0), undefined, 2);
    await qb.enqueue(task.taskId, message(1), undefined, 2);
    await assert.rejects(qa.enqueue(task.taskId, message(2), undefined, 2), {
      message: 'Task message queue overflow: queue size (2) exceeds maximum (2)',
    });
    await qb.enqueue(task.taskId, message(3)); // no maxSize: no limit
    await assert.rejects(qb.enqueue(task.taskId, message(4), undefined, 2), {
      message: 'Task message queue overflow: queue size (3) exceeds maximum (2)',
    });
    assert.deepEqual(await qa.dequeue(task.taskId), message(0));
    assert.deepEqual(await qa.dequeue(task.taskId), message(1));
    await qa.enqueue(task.taskId, message(5), undefined, 2);
    assert.deepEqual(await qb.dequeueAll(task.taskId), [message(3), message(5)]);
    await assert.rejects(qa.enqueue(task.taskId, message(6), undefined, 0), {
      message: 'Task message queue overflow: queue size (0) exceeds maximum (0)',
    });
    assert.deepEqual(await qb.dequeueAll(task.taskId), []);
  });
}
