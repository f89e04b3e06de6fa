import type { JsonValue, SessionData, SessionDataSnapshot } from '../../../src/index.js';

/**
 * An in-process implementation of the library's SessionData interface, for testing tools without a fleet.
 * Values are deep-copied on the way in and out, as a real store would serialize them.
 */
export class MemorySessionData<T extends JsonValue = JsonValue> implements SessionData<T> {
  private value: T | undefined;
  private version = 0;
  /** Number of writes, for assertions. */
  writes = 0;

  private static copy<V>(v: V): V {
    return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as V);
  }

  async get(): Promise<T | undefined> {
    return MemorySessionData.copy(this.value);
  }

  async snapshot(): Promise<SessionDataSnapshot<T>> {
    return { value: MemorySessionData.copy(this.value), version: this.version };
  }

  async set(value: T): Promise<number> {
    this.value = MemorySessionData.copy(value);
    this.writes++;
    return ++this.version;
  }

  async update(fn: (current: T | undefined) => T | Promise<T>): Promise<T> {
    for (;;) {
      const seen = this.version;
      const next = await fn(MemorySessionData.copy(this.value));
      if (seen !== this.version) continue; // someone wrote meanwhile: run fn again on the fresh value
      await this.set(next);
      return MemorySessionData.copy(next);
    }
  }

  async clear(): Promise<void> {
    this.value = undefined;
    this.version++;
  }
}
