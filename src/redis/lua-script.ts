import { readFileSync } from 'node:fs';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './client.js';
import { call } from './call.js';

/**
 * Driver seam: `defineCommand` adds a method per script that ioredis cannot type. With no fixed
 * `numberOfKeys`, the first argument is the number of keys.
 */
type ScriptMethod<R> = (numberOfKeys: number, ...keysThenArgs: Array<string | number>) => R;

/** A Lua script from `src/redis/scripts/`, registered on one client. */
export interface LuaScript {
  /** Runs the script as one EVALSHA (ioredis falls back to EVAL once per connection). */
  run(keys: string[], args: Array<string | number>, timeoutMs?: number): Promise<unknown>;
  /** Queues the script on a pipeline created from the same client (after this script was defined). */
  queue(pipeline: ChainableCommander, keys: string[], args: Array<string | number>): void;
}

const INCLUDE = /^--\s*@include\s+([\w-]+)\s*$/gm;

/**
 * Reads `scripts/<name>.lua`, inlining `-- @include <part>` lines from `scripts/includes/<part>.lua`
 * (Lua scripts cannot import one another, and a few share the session-lifetime rule).
 * The files are read relative to this module, so the build must copy `src/redis/scripts/` next to
 * the compiled `dist/src/redis/`.
 */
export function readLuaScript(name: string): string {
  const source = readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
  return source.replace(INCLUDE, (_line, part: string) =>
    readFileSync(new URL(`./scripts/includes/${part}.lua`, import.meta.url), 'utf8'),
  );
}

/**
 * Registers `scripts/<name>.lua` on `redis` with `defineCommand`, under a name that cannot clash
 * with the user's own commands. Defining the same script twice on one client is harmless.
 */
export function defineLuaScript(redis: RedisClient, name: string): LuaScript {
  const command = `mcpFleet_${name.replace(/-/g, '_')}`;
  redis.defineCommand(command, { lua: readLuaScript(name) });
  return {
    run(keys, args, timeoutMs) {
      const method = (redis as unknown as Record<string, ScriptMethod<Promise<unknown>>>)[command];
      if (!method) throw new Error(`Lua script ${name} is not defined on this client`);
      return call(method.call(redis, keys.length, ...keys, ...args), timeoutMs);
    },
    queue(pipeline, keys, args) {
      const method = (pipeline as unknown as Record<string, ScriptMethod<ChainableCommander>>)[command];
      if (!method) throw new Error(`Lua script ${name} is not defined on this pipeline's client`);
      method.call(pipeline, keys.length, ...keys, ...args);
    },
  };
}
