// What optional entry points (`mcp-fleet/tasks`) need of a fleet and the public object does not show:
// kept beside each fleet, not on it.
import type { RedisClient } from './redis/client.js';

/** A fleet's connection and liveness, for stores built next to it. */
export interface FleetInternals {
  /** The fleet's command connection; undefined when embedded (no Redis). */
  redis: RedisClient | undefined;
  keyPrefix: string;
  instanceId: string;
  commandTimeoutMs: number;
  /** Whether an instance's liveness record is there (a dead or frozen one's has expired). */
  isAlive(instanceId: string): Promise<boolean>;
}

const internals = new WeakMap<object, FleetInternals>();

export function registerInternals(fleet: object, value: FleetInternals): void {
  internals.set(fleet, value);
}

/** The internals of a fleet made by `createFleet`; throws for anything else. */
export function internalsOf(fleet: object): FleetInternals {
  const value = internals.get(fleet);
  if (!value) throw new TypeError('not a fleet made by createFleet()');
  return value;
}
