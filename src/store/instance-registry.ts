/** What the fleet knows about one live instance. */
export interface InstanceRecord {
  instanceId: string;
  /** When the instance started, ms since the epoch (its own clock). */
  startedAt: number;
  /** Sessions it owned at its last heartbeat. */
  owned: number;
  /** True once it is shutting down (it hands its sessions off and takes no new ones). */
  draining: boolean;
  /** Number of its heartbeats so far: a changing count shows a live process. */
  beats: number;
}

/**
 * Which instances are alive. Each instance renews its entry with a heartbeat; an entry not renewed
 * within `ttlMs` (the instance died, or froze) is gone, which is how a frozen session owner is found.
 */
export interface InstanceRegistry {
  /** Renews `record.instanceId`'s liveness for `ttlMs`. */
  beat(record: InstanceRecord, ttlMs: number): Promise<void>;
  /** For each id, its record while it renews its liveness within its TTL, else undefined (one round trip). */
  read(instanceIds: string[]): Promise<Array<InstanceRecord | undefined>>;
  /** The live instances, by id. */
  list(): Promise<InstanceRecord[]>;
  /** Removes an instance's entry (it is shutting down for good). */
  remove(instanceId: string): Promise<void>;
  close(): Promise<void>;
}
