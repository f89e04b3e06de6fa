import type { InstanceRecord, InstanceRegistry } from './instance-registry.js';

/** Options of {@link MemoryInstanceRegistry}. */
export interface MemoryInstanceRegistryOptions {
  /**
   * Clock in ms (tests inject one).
   * @default Date.now
   */
  now?: () => number;
}

/** {@link InstanceRegistry} in one process (the embedded default, and the contract tests' reference). */
export class MemoryInstanceRegistry implements InstanceRegistry {
  private readonly entries = new Map<string, { record: InstanceRecord; expiresAt: number }>();
  private readonly now: () => number;

  constructor(opts: MemoryInstanceRegistryOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  /** {@inheritDoc InstanceRegistry.beat} */
  async beat(record: InstanceRecord, ttlMs: number): Promise<void> {
    this.entries.set(record.instanceId, { record: { ...record }, expiresAt: this.now() + ttlMs });
  }

  /** {@inheritDoc InstanceRegistry.read} */
  async read(instanceIds: string[]): Promise<Array<InstanceRecord | undefined>> {
    const now = this.now();
    return instanceIds.map((id) => {
      const e = this.entries.get(id);
      return e && e.expiresAt > now ? { ...e.record } : undefined;
    });
  }

  /** {@inheritDoc InstanceRegistry.list} */
  async list(): Promise<InstanceRecord[]> {
    const now = this.now();
    const out: InstanceRecord[] = [];
    for (const [id, e] of this.entries) {
      if (e.expiresAt > now) out.push({ ...e.record });
      else this.entries.delete(id);
    }
    return out.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  }

  /** {@inheritDoc InstanceRegistry.remove} */
  async remove(instanceId: string): Promise<void> {
    this.entries.delete(instanceId);
  }

  /** Nothing to release. Idempotent. */
  async close(): Promise<void> {}
}
