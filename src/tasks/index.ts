// `mcp-fleet/tasks`: the SDK v1's experimental task store and message queue, shared by the fleet.
// A task created on one instance is read, updated and cancelled from any other; a task whose instance
// died reads as failed. Embedded (no Redis): the SDK's in-memory ones, one instance.
import {
  InMemoryTaskMessageQueue,
  InMemoryTaskStore,
  type TaskMessageQueue,
  type TaskStore,
} from '@modelcontextprotocol/sdk/experimental/tasks';
import { internalsOf } from '../fleet-internals.js';
import type { Fleet } from '../types.js';
import { RedisTaskMessageQueue, RedisTaskStore, TASK_INSTANCE_STOPPED } from './redis-task-store.js';

export { TASK_INSTANCE_STOPPED };

/** Options of {@link fleetTaskStores}. */
export interface FleetTaskStoresOptions {
  /** Longest a task (and its queue) is kept, also for `ttl: null`. @default 24 h */
  maxTtlMs?: number | undefined;
}

/**
 * The task store and message queue of `fleet` — pass both to the SDK v1 server the factory builds
 * (`new McpServer(info, { taskStore, taskMessageQueue })`); build them once, next to the fleet.
 */
export function fleetTaskStores(
  fleet: Fleet,
  options: FleetTaskStoresOptions = {},
): { taskStore: TaskStore; taskMessageQueue: TaskMessageQueue } {
  const i = internalsOf(fleet);
  if (!i.redis)
    return { taskStore: new InMemoryTaskStore(), taskMessageQueue: new InMemoryTaskMessageQueue() };
  const common = {
    prefix: i.keyPrefix,
    commandTimeoutMs: i.commandTimeoutMs,
    ...(options.maxTtlMs === undefined ? {} : { maxTtlMs: options.maxTtlMs }),
  };
  return {
    taskStore: new RedisTaskStore(i.redis, { ...common, instanceId: i.instanceId, isAlive: i.isAlive }),
    taskMessageQueue: new RedisTaskMessageQueue(i.redis, common),
  };
}
