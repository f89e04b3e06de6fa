import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import { execPipeline } from './call.js';

/** A client of any topology: standalone or Sentinel (`Redis`), or Cluster. */
export type RedisClient = Redis | Cluster;

/** Whether the client talks to a Redis Cluster. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/**
 * Runs commands on keys of several slots: one pipeline per group (each group one slot) on a
 * Cluster, where a pipeline may not span slots; one pipeline for everything otherwise (one round
 * trip). `queue` adds a group's commands to a pipeline. Resolves to the replies of each group.
 */
export async function pipelinePerSlot<G>(
  client: RedisClient,
  groups: readonly G[],
  queue: (pipeline: ChainableCommander, group: G) => void,
  timeoutMs: number,
): Promise<unknown[][]> {
  if (groups.length === 0) return [];
  if (!isCluster(client)) {
    const p = client.pipeline();
    const sizes: number[] = [];
    for (const g of groups) {
      const before = p.length;
      queue(p, g);
      sizes.push(p.length - before);
    }
    const replies = await execPipeline(p, timeoutMs);
    const out: unknown[][] = [];
    let at = 0;
    for (const n of sizes) {
      out.push(replies.slice(at, at + n));
      at += n;
    }
    return out;
  }
  return Promise.all(
    groups.map((g) => {
      const p = client.pipeline();
      queue(p, g);
      return execPipeline(p, timeoutMs);
    }),
  );
}
