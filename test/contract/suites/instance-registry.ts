import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { InstanceRecord, InstanceRegistry } from '../../../src/store/instance-registry.js';

export const rec = (instanceId: string, beats = 1, over: Partial<InstanceRecord> = {}): InstanceRecord => ({
  instanceId,
  startedAt: 1000,
  owned: 2,
  draining: false,
  beats,
  ...over,
});

/**
 * The InstanceRegistry contract. `expire` makes every entry older than its TTL, as time does (an
 * injected clock for memory, a short TTL that the test waits out by polling for Redis).
 */
export function instanceRegistryContract(
  make: () => { a: InstanceRegistry; b: InstanceRegistry; expire(ttlMs: number): Promise<void> },
): void {
  it('reads what each instance said in its last heartbeat; unknown instances read as undefined', async () => {
    const { a, b } = make();
    await a.beat(rec('i1', 1), 60_000);
    await b.beat(rec('i2', 5, { draining: true, owned: 0 }), 60_000);
    await a.beat(rec('i1', 2, { owned: 3 }), 60_000);
    assert.deepEqual(await b.read(['i1', 'i2', 'nobody']), [
      rec('i1', 2, { owned: 3 }),
      rec('i2', 5, { draining: true, owned: 0 }),
      undefined,
    ]);
    assert.deepEqual(
      (await a.list()).map((r) => r.instanceId),
      ['i1', 'i2'],
    );
    assert.deepEqual(await a.read([]), []);
  });

  it('an instance that stops beating is gone after its TTL; one that keeps beating is not', async () => {
    const { a, b, expire } = make();
    await a.beat(rec('dead'), 300);
    await a.beat(rec('alive'), 60_000);
    await expire(300);
    assert.deepEqual(await b.read(['dead', 'alive']), [undefined, rec('alive')]);
    assert.deepEqual(
      (await b.list()).map((r) => r.instanceId),
      ['alive'],
    );
  });

  it('remove takes an instance out at once', async () => {
    const { a, b } = make();
    await a.beat(rec('leaving'), 60_000);
    await b.remove('leaving');
    assert.deepEqual(await a.read(['leaving']), [undefined]);
    assert.deepEqual(await a.list(), []);
    await b.remove('never-there');
  });
}
