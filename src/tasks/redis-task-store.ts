import { randomBytes } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type {
  CreateTaskOptions,
  QueuedMessage,
  TaskMessageQueue,
  TaskStore,
} from '@modelcontextprotocol/sdk/experimental/tasks';
import type { Request, RequestId, Result, Task } from '@modelcontextprotocol/sdk/types.js';
import { call, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis/call.js';
import { pipelinePerSlot, type RedisClient } from '../redis/client.js';
import { defineLuaScript, type LuaScript } from '../redis/lua-script.js';

/** Longest a task is kept by default: what `ttl: null` (and any longer `ttl`) gets, in ms (24 h). */
export const DEFAULT_TASK_MAX_TTL_MS = 24 * 60 * 60 * 1000;

/** Status message of a task failed because the instance running it is no longer alive. */
export const TASK_INSTANCE_STOPPED = 'The instance running this task stopped';

/** Tasks per `listTasks` page, as the SDK's `InMemoryTaskStore`. */
const PAGE_SIZE = 10;

/** Most index entries a listing reads at once (it reads more than a page past expired tasks). */
const MAX_BATCH = 16 * (PAGE_SIZE + 1);

/** `pollInterval` of a task created without one, as the SDK's `InMemoryTaskStore`. */
const DEFAULT_POLL_INTERVAL_MS = 1000;

/**
 * The Redis keys of MCP tasks, all under `prefix`. A task's record and its message queue share the
 * Cluster hash tag `{t:<taskId>}`, so the scripts that touch both run on one slot; each listing
 * index has a tag of its own. These strings are an on-disk format: change them only with a migration.
 */
export class TaskKeys {
  constructor(readonly prefix: string) {}

  /**
   * Hash: one task (status, ttl, times, poll interval, status message, session, creating instance,
   * result). Expires: `ttl` after its creation, restarted when it reaches a terminal status.
   */
  task(taskId: string): string {
    return `${this.prefix}{t:${taskId}}:task`;
  }

  /** List: the task's queued messages (JSON), oldest first. Expires: with the task. */
  queue(taskId: string): string {
    return `${this.prefix}{t:${taskId}}:queue`;
  }

  /**
   * Sorted set: the ids of the tasks created in one session (`-`: created without a session), score
   * = creation time (ms). Entries of expired tasks are pruned on listing and on creation. Expires:
   * when its longest-lived task can no longer be alive.
   */
  sessionTasks(sessionId: string | undefined): string {
    return `${this.prefix}{ts:${sessionId ?? '-'}}:tasks`;
  }

  /** Sorted set: the ids of every task, as {@link sessionTasks} (a listing without a session sees all). */
  allTasks(): string {
    return `${this.prefix}{tasks}:all`;
  }
}

/** Options of {@link RedisTaskStore}. */
export interface RedisTaskStoreOptions {
  /** Prefix of every key (e.g. `mcp:`); the same on every instance sharing the tasks. */
  prefix: string;
  /** Id of this instance: recorded as the instance running each task this store creates. */
  instanceId: string;
  /**
   * Whether an instance is alive (e.g. from the instance registry). A task still `working` or
   * `input_required` whose instance is not alive is failed when read. Not asked about this instance.
   */
  isAlive(instanceId: string): Promise<boolean>;
  /**
   * Longest a task is kept, in ms: a task created with `ttl: null`, without a ttl, or with a longer
   * one gets this TTL (reported as its `ttl`). Use the same value on every instance: listing indexes
   * are pruned by it.
   * @default 86400000 (24 h)
   */
  maxTtlMs?: number;
  /**
   * Bound on every Redis call (and on each `isAlive`) in ms; past it the call fails with
   * `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/** Options of {@link RedisTaskMessageQueue}. */
export interface RedisTaskMessageQueueOptions {
  /** Prefix of every key, the same as the {@link RedisTaskStore}'s. */
  prefix: string;
  /**
   * TTL of the queue of a task that is not in the store, in ms (a task's queue expires with it).
   * @default 86400000 (24 h)
   */
  maxTtlMs?: number;
  /**
   * Bound on every Redis call in ms; past it the call fails with `STORE_UNAVAILABLE`.
   * @default 2000
   */
  commandTimeoutMs?: number;
}

/** Whether a status is final (`completed`, `failed`, `cancelled`): the SDK's `isTerminal`. */
export function isTerminalStatus(status: Task['status']): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** The hash fields a task is read from, in this order (task-transition.lua returns the same). */
const FIELDS = [
  'status',
  'ttl',
  'createdAt',
  'updatedAt',
  'pollInterval',
  'statusMessage',
  'session',
  'instance',
] as const;

/** A task as stored: what the SDK sees, plus whose it is. */
interface StoredTask {
  task: Task;
  /** Session it was created in; undefined when created without one. */
  session: string | undefined;
  /** Instance that created it (and runs it). */
  instance: string | undefined;
}

/** A place in a listing index: an entry's score (as Redis wrote it, and as a number) and member. */
interface Position {
  scoreText: string;
  score: number;
  member: string;
}

/** An index entry, with the index it came from (so a stale entry can be pruned there). */
interface Entry extends Position {
  index: string;
}

/**
 * The SDK's `TaskStore` (v1 SDK, experimental tasks) in Redis, shared by every instance: a task
 * created on one instance is read, updated, cancelled and listed through any other. The semantics
 * are those of the SDK's `InMemoryTaskStore` (statuses and terminal states, errors, session
 * scoping, pages of 10 with the last task id as cursor), with these differences:
 *
 * - Every key expires. The task's `ttl` is capped by `maxTtlMs`, and `ttl: null` (or none) gets
 *   `maxTtlMs`; the TTL in use is what the task reports as its `ttl`. As in memory, a task expires
 *   `ttl` after its creation, restarted when it gets its result or a terminal status.
 * - A task still `working` or `input_required` whose creating instance is not alive is marked
 *   `failed` ({@link TASK_INSTANCE_STOPPED}) by the `getTask` or `listTasks` that finds it, atomically
 *   and only if it has not ended meanwhile: no task stays `working` after its instance died.
 *
 * Status changes are Lua scripts on the task's slot; creation writes the task, then its listing
 * indexes (one of its session, one of all tasks). Every Redis call is bounded by
 * `commandTimeoutMs` and fails as `FleetError('STORE_UNAVAILABLE')`; errors of the task store's own
 * (unknown task, illegal transition, invalid cursor) are plain `Error`s with the SDK's messages.
 * The client is the caller's: the store never closes it.
 */
export class RedisTaskStore implements TaskStore {
  /** The key layout. */
  readonly keys: TaskKeys;
  private readonly instanceId: string;
  private readonly isAlive: (instanceId: string) => Promise<boolean>;
  private readonly maxTtlMs: number;
  private readonly timeoutMs: number;
  private readonly scripts: Record<'create' | 'index' | 'transition', LuaScript>;
  /** Creation time of the last task created here, and how many were created in that ms before it. */
  private lastMs = 0;
  private sequence = 0;

  constructor(
    private readonly redis: RedisClient,
    opts: RedisTaskStoreOptions,
  ) {
    this.keys = new TaskKeys(opts.prefix);
    this.instanceId = opts.instanceId;
    this.isAlive = opts.isAlive;
    this.maxTtlMs = opts.maxTtlMs ?? DEFAULT_TASK_MAX_TTL_MS;
    if (!(this.maxTtlMs >= 1)) throw new RangeError(`maxTtlMs must be at least 1 ms, not ${this.maxTtlMs}`);
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      create: defineLuaScript(redis, 'task-create'),
      index: defineLuaScript(redis, 'task-index'),
      transition: defineLuaScript(redis, 'task-transition'),
    };
  }

  /**
   * Creates a `working` task run by this instance, in `sessionId` if given. Its TTL is `ttl` capped
   * by `maxTtlMs` (`maxTtlMs` for `ttl: null`); `pollInterval` defaults to 1000 ms. The request is
   * not stored (nothing reads it back).
   */
  async createTask(
    taskParams: CreateTaskOptions,
    _requestId: RequestId,
    _request: Request,
    sessionId?: string,
  ): Promise<Task> {
    const taskId = randomBytes(16).toString('hex');
    const { ms, score } = this.stamp();
    const ttl = this.ttlFor(taskParams.ttl);
    const pollInterval = taskParams.pollInterval ?? DEFAULT_POLL_INTERVAL_MS;
    const createdAt = new Date(ms).toISOString();
    const task: Task = { taskId, status: 'working', ttl, createdAt, lastUpdatedAt: createdAt, pollInterval };
    const record: Array<string | number> = [
      'status',
      task.status,
      'ttl',
      ttl,
      'createdAt',
      ms,
      'updatedAt',
      ms,
      'pollInterval',
      pollInterval,
      'instance',
      this.instanceId,
    ];
    if (sessionId !== undefined) record.push('session', sessionId);
    const created = await this.scripts.create.run([this.keys.task(taskId)], [ttl, ...record], this.timeoutMs);
    if (created !== 1) throw new Error(`Task with ID ${taskId} already exists`);
    // The task first, then its index entries: a listing never finds an entry without its task (an
    // entry whose task is gone is pruned as expired). If this fails, the unlisted task expires.
    const args = [String(score), taskId, 2 * ttl, ms - 2 * this.maxTtlMs];
    await pipelinePerSlot(
      this.redis,
      [this.keys.sessionTasks(sessionId), this.keys.allTasks()],
      (p, index) => this.scripts.index.queue(p, [index], args),
      this.timeoutMs,
    );
    return task;
  }

  /**
   * The task, or null when it does not exist (or expired) or belongs to another session. A task
   * still running on an instance that is not alive any more comes back `failed`.
   */
  async getTask(taskId: string, sessionId?: string): Promise<Task | null> {
    const fields = await call(this.redis.hmget(this.keys.task(taskId), ...FIELDS), this.timeoutMs);
    const stored = decode(taskId, fields);
    if (!stored || !visible(stored.session, sessionId)) return null;
    return this.settle(stored, this.liveness());
  }

  /** Stores the result and the final status; throws for an unknown task or one that has ended. */
  async storeTaskResult(
    taskId: string,
    status: 'completed' | 'failed',
    result: Result,
    sessionId?: string,
  ): Promise<void> {
    const reply = await this.transition(taskId, 'result', status, '', JSON.stringify(result), sessionId);
    if (reply[0] === 'missing') throw new Error(`Task with ID ${taskId} not found`);
    if (reply[0] === 'terminal') {
      throw new Error(
        `Cannot store result for task ${taskId} in terminal status '${String(reply[1])}'. Task results can only be stored once.`,
      );
    }
  }

  /** The stored result; throws for an unknown task or one without a result. */
  async getTaskResult(taskId: string, sessionId?: string): Promise<Result> {
    const [status, owner, result] = await call(
      this.redis.hmget(this.keys.task(taskId), 'status', 'session', 'result'),
      this.timeoutMs,
    );
    if (!status || !visible(owner ?? undefined, sessionId))
      throw new Error(`Task with ID ${taskId} not found`);
    if (!result) throw new Error(`Task ${taskId} has no result stored`);
    return JSON.parse(result) as Result;
  }

  /**
   * Sets the status (and the status message, when one is given); throws for an unknown task or one
   * in a terminal status.
   */
  async updateTaskStatus(
    taskId: string,
    status: Task['status'],
    statusMessage?: string,
    sessionId?: string,
  ): Promise<void> {
    const reply = await this.transition(taskId, 'status', status, statusMessage ?? '', '', sessionId);
    if (reply[0] === 'missing') throw new Error(`Task with ID ${taskId} not found`);
    if (reply[0] === 'terminal') {
      throw new Error(
        `Cannot update task ${taskId} from terminal status '${String(reply[1])}' to '${status}'. Terminal states (completed, failed, cancelled) cannot transition to other states.`,
      );
    }
  }

  /**
   * One page (10) of the tasks `sessionId` can see — its own and those created without a session;
   * every task without `sessionId` — oldest first. `nextCursor` (the page's last task id) is set
   * when more follow; a cursor that is not a task the caller can see throws `Invalid cursor`. Tasks
   * whose instance is not alive are failed, as in {@link getTask}.
   */
  async listTasks(cursor?: string, sessionId?: string): Promise<{ tasks: Task[]; nextCursor?: string }> {
    const indexes =
      sessionId === undefined
        ? [this.keys.allTasks()]
        : [this.keys.sessionTasks(sessionId), this.keys.sessionTasks(undefined)];
    let after = cursor ? await this.cursorPosition(cursor, sessionId, indexes) : undefined;
    const alive = this.liveness();
    const found: Task[] = [];
    // One more than a page: whether a next page exists. Entries of expired tasks are skipped (and
    // pruned); past a batch of them, the next batch is larger.
    for (let batch = PAGE_SIZE + 1; found.length <= PAGE_SIZE; batch = Math.min(2 * batch, MAX_BATCH)) {
      const { entries, exhausted } = await this.entriesAfter(indexes, after, batch);
      if (entries.length > 0) {
        after = entries[entries.length - 1];
        found.push(...(await this.load(entries, sessionId, alive)));
      }
      if (exhausted) break;
    }
    const tasks = found.slice(0, PAGE_SIZE);
    const nextCursor = found.length > PAGE_SIZE ? tasks[tasks.length - 1]?.taskId : undefined;
    return { tasks, nextCursor };
  }

  /** The TTL a task gets: `ttl` rounded up to whole ms, capped by `maxTtlMs`; `maxTtlMs` for none. */
  private ttlFor(requested: number | null | undefined): number {
    if (requested === null || requested === undefined || !(requested > 0)) return this.maxTtlMs;
    return Math.min(Math.ceil(requested), this.maxTtlMs);
  }

  /**
   * Creation time of a new task (this clock, never before the previous task's) and its index score:
   * the ms plus a thousandth per task created here earlier in the same ms, so tasks of one instance
   * list in creation order.
   */
  private stamp(): { ms: number; score: number } {
    const ms = Math.max(Date.now(), this.lastMs);
    this.sequence = ms === this.lastMs ? this.sequence + 1 : 0;
    this.lastMs = ms;
    return { ms, score: ms + Math.min(this.sequence, 999) / 1000 };
  }

  /** Runs task-transition.lua on a task (see there for the reply). */
  private async transition(
    taskId: string,
    kind: 'status' | 'result' | 'lost',
    status: Task['status'],
    statusMessage: string,
    result: string,
    sessionId: string | undefined,
  ): Promise<[string, unknown?]> {
    return (await this.scripts.transition.run(
      [this.keys.task(taskId), this.keys.queue(taskId)],
      [Date.now(), kind, sessionId === undefined ? '0' : '1', sessionId ?? '', status, statusMessage, result],
      this.timeoutMs,
    )) as [string, unknown?];
  }

  /** `isAlive`, bounded, asked once per instance for the life of the returned function. */
  private liveness(): (instanceId: string) => Promise<boolean> {
    const asked = new Map<string, Promise<boolean>>();
    return (instanceId) => {
      let alive = asked.get(instanceId);
      if (!alive) asked.set(instanceId, (alive = call(this.isAlive(instanceId), this.timeoutMs)));
      return alive;
    };
  }

  /**
   * The task as the caller should see it: failed (atomically, if it is still running then) when it
   * has not ended and the instance running it is not alive; null if it expired meanwhile.
   */
  private async settle(
    stored: StoredTask,
    alive: (instanceId: string) => Promise<boolean>,
  ): Promise<Task | null> {
    const { task, instance } = stored;
    if (isTerminalStatus(task.status) || instance === undefined || instance === this.instanceId) return task;
    if (await alive(instance)) return task;
    const reply = await this.transition(task.taskId, 'lost', 'failed', TASK_INSTANCE_STOPPED, '', undefined);
    if (reply[0] === 'missing') return null;
    return decode(task.taskId, reply[1] as Array<string | null>)?.task ?? null;
  }

  /**
   * Where a listing resumes after `cursor`: its entry in one of `indexes`. Throws `Invalid cursor`
   * (as the SDK's store) unless the cursor is a task the caller can see.
   */
  private async cursorPosition(
    cursor: string,
    sessionId: string | undefined,
    indexes: string[],
  ): Promise<Position> {
    const steps: Array<(p: ChainableCommander) => void> = [
      (p) => p.hmget(this.keys.task(cursor), ...FIELDS),
      ...indexes.map((index) => (p: ChainableCommander) => p.zscore(index, cursor)),
    ];
    const [task, ...scores] = await pipelinePerSlot(this.redis, steps, (p, step) => step(p), this.timeoutMs);
    const stored = decode(cursor, (task?.[0] ?? []) as Array<string | null>);
    const scoreText = scores.map((reply) => reply[0] as string | null).find((s) => s !== null);
    if (!stored || !visible(stored.session, sessionId) || scoreText === undefined) {
      throw new Error(`Invalid cursor: ${cursor}`);
    }
    return { scoreText, score: Number(scoreText), member: cursor };
  }

  /**
   * The first `count` entries of the merged `indexes` after `after` (by score, then member: Redis's
   * order), and whether no entry follows them.
   */
  private async entriesAfter(
    indexes: string[],
    after: Position | undefined,
    count: number,
  ): Promise<{ entries: Entry[]; exhausted: boolean }> {
    const replies = await pipelinePerSlot(
      this.redis,
      indexes,
      (p, index) => {
        if (after === undefined) {
          p.zrange(index, 0, count - 1, 'WITHSCORES');
        } else {
          // Entries tied with the position's score (rare: the same ms on two instances), then the rest.
          p.zrangebyscore(index, after.scoreText, after.scoreText, 'WITHSCORES');
          p.zrangebyscore(index, `(${after.scoreText}`, '+inf', 'WITHSCORES', 'LIMIT', 0, count);
        }
      },
      this.timeoutMs,
    );
    const merged: Entry[] = [];
    let exhausted = true;
    replies.forEach((reply, i) => {
      const index = indexes[i]!;
      const [first, rest] = reply as [string[], string[] | undefined];
      const ties = after === undefined ? [] : entries(index, first).filter((e) => e.member > after.member);
      const next = after === undefined ? entries(index, first) : entries(index, rest ?? []);
      if (next.length >= count) exhausted = false;
      merged.push(...ties, ...next);
    });
    merged.sort((x, y) => x.score - y.score || (x.member < y.member ? -1 : x.member > y.member ? 1 : 0));
    if (merged.length > count) exhausted = false;
    return { entries: merged.slice(0, count), exhausted };
  }

  /**
   * The tasks of `entries` the caller can see, in their order (failed if their instance is gone);
   * entries whose task has expired are pruned from their index.
   */
  private async load(
    entries: Entry[],
    sessionId: string | undefined,
    alive: (instanceId: string) => Promise<boolean>,
  ): Promise<Task[]> {
    const replies = await pipelinePerSlot(
      this.redis,
      entries,
      (p, e) => p.hmget(this.keys.task(e.member), ...FIELDS),
      this.timeoutMs,
    );
    const stale = new Map<string, string[]>();
    const pending: Array<Promise<Task | null>> = [];
    entries.forEach((e, i) => {
      const stored = decode(e.member, replies[i]![0] as Array<string | null>);
      if (!stored) {
        const members = stale.get(e.index) ?? [];
        stale.set(e.index, members);
        members.push(e.member);
      } else if (visible(stored.session, sessionId)) {
        pending.push(this.settle(stored, alive));
      }
    });
    const tasks = await Promise.all(pending);
    if (stale.size > 0) {
      await pipelinePerSlot(
        this.redis,
        [...stale],
        (p, [index, members]) => p.zrem(index, ...members),
        this.timeoutMs,
      );
    }
    return tasks.filter((t): t is Task => t !== null);
  }
}

/**
 * The SDK's `TaskMessageQueue` in Redis: a list per task at `TaskKeys.queue`, shared by every
 * instance, FIFO. As the SDK's `InMemoryTaskMessageQueue`, the queue is the task's whatever session
 * asks (the task store decides who sees the task), and `enqueue` with `maxSize` throws once the
 * queue holds that many. The queue expires with its task (or `maxTtlMs` after its last message
 * when the task is not in the store). Every Redis call is bounded and fails as
 * `FleetError('STORE_UNAVAILABLE')`. The client is the caller's: the queue never closes it.
 */
export class RedisTaskMessageQueue implements TaskMessageQueue {
  /** The key layout. */
  readonly keys: TaskKeys;
  private readonly maxTtlMs: number;
  private readonly timeoutMs: number;
  private readonly scripts: Record<'enqueue' | 'drain', LuaScript>;

  constructor(
    private readonly redis: RedisClient,
    opts: RedisTaskMessageQueueOptions,
  ) {
    this.keys = new TaskKeys(opts.prefix);
    this.maxTtlMs = opts.maxTtlMs ?? DEFAULT_TASK_MAX_TTL_MS;
    if (!(this.maxTtlMs >= 1)) throw new RangeError(`maxTtlMs must be at least 1 ms, not ${this.maxTtlMs}`);
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.scripts = {
      enqueue: defineLuaScript(redis, 'task-enqueue'),
      drain: defineLuaScript(redis, 'task-drain'),
    };
  }

  /** Appends `message`; with `maxSize`, throws (atomically, nothing queued) if the queue is full. */
  async enqueue(
    taskId: string,
    message: QueuedMessage,
    _sessionId?: string,
    maxSize?: number,
  ): Promise<void> {
    const [queued, length] = (await this.scripts.enqueue.run(
      [this.keys.queue(taskId), this.keys.task(taskId)],
      [JSON.stringify(message), maxSize === undefined ? '' : maxSize, this.maxTtlMs],
      this.timeoutMs,
    )) as [number, number];
    if (queued !== 1) {
      throw new Error(
        `Task message queue overflow: queue size (${length}) exceeds maximum (${String(maxSize)})`,
      );
    }
  }

  /** Removes and returns the oldest message; undefined when the queue is empty. */
  async dequeue(taskId: string, _sessionId?: string): Promise<QueuedMessage | undefined> {
    const message = await call(this.redis.lpop(this.keys.queue(taskId)), this.timeoutMs);
    return message === null ? undefined : (JSON.parse(message) as QueuedMessage);
  }

  /** Removes and returns every message, oldest first (atomically). */
  async dequeueAll(taskId: string, _sessionId?: string): Promise<QueuedMessage[]> {
    const messages = (await this.scripts.drain.run(
      [this.keys.queue(taskId)],
      [],
      this.timeoutMs,
    )) as string[];
    return messages.map((m) => JSON.parse(m) as QueuedMessage);
  }
}

/** A task from its FIELDS; undefined when it does not exist. */
function decode(taskId: string, fields: ReadonlyArray<string | null | undefined>): StoredTask | undefined {
  const [status, ttl, createdAt, updatedAt, pollInterval, statusMessage, session, instance] = fields;
  if (!status) return undefined;
  const task: Task = {
    taskId,
    status: status as Task['status'],
    ttl: Number(ttl),
    createdAt: new Date(Number(createdAt)).toISOString(),
    lastUpdatedAt: new Date(Number(updatedAt)).toISOString(),
    pollInterval: Number(pollInterval),
  };
  if (statusMessage) task.statusMessage = statusMessage;
  return { task, session: session ?? undefined, instance: instance ?? undefined };
}

/**
 * Whether a caller in `sessionId` may see a task created in session `owner`: a task created in a session is not found by
 * another session; a task created without one, or a caller without one, is not restricted.
 */
function visible(owner: string | undefined, sessionId: string | undefined): boolean {
  return sessionId === undefined || owner === undefined || owner === sessionId;
}

/** Index entries from a `WITHSCORES` reply (member, score, member, score, …). */
function entries(index: string, reply: string[]): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const scoreText = reply[i + 1]!;
    out.push({ index, member: reply[i]!, scoreText, score: Number(scoreText) });
  }
  return out;
}
