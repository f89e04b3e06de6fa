import { FleetError, notOwner } from './errors.js';
import type { Fence, SessionStore } from './store/session-store.js';
import type { JsonValue, SessionData, SessionDataSnapshot } from './types.js';

/** The {@link SessionData} API of one session over a store. */
export function createSessionData<T extends JsonValue>(
  store: SessionStore,
  sessionId: string,
  maxBytes: number,
  /**
   * For the data API of a live copy: the owner's fence (writes by a replaced copy are refused with
   * `FleetError('NOT_OWNER')`) and what to do when one is refused. Omitted: unfenced writes.
   */
  fencing?: { fence(): Fence | undefined; onFenced(): void },
): SessionData<T> {
  const encode = (value: T): string => {
    const json = JSON.stringify(value);
    if (json === undefined) throw new FleetError('INVALID_REQUEST', 'session data must be JSON');
    if (Buffer.byteLength(json) > maxBytes) {
      throw new FleetError('DATA_TOO_LARGE', `session data exceeds ${maxBytes} bytes`);
    }
    return json;
  };
  const gone = () => new FleetError('SESSION_NOT_FOUND', 'Session not found');
  const write = async (json: string | undefined, expected?: number) => {
    const v = await store.setData(sessionId, json, expected, fencing?.fence());
    if (v === 'fenced') {
      fencing?.onFenced();
      throw notOwner(sessionId);
    }
    return v;
  };

  const snapshot = async (): Promise<SessionDataSnapshot<T>> => {
    const snap = await store.getData(sessionId);
    if (!snap) throw gone();
    return {
      value: snap.json === undefined ? undefined : (JSON.parse(snap.json) as T),
      version: snap.version,
    };
  };

  return {
    snapshot,
    async get() {
      return (await snapshot()).value;
    },
    async set(value) {
      const v = await write(encode(value));
      if (v === 'gone' || v === 'conflict') throw gone();
      return v;
    },
    async clear() {
      const v = await write(undefined);
      if (v === 'gone') throw gone();
    },
    async update(fn, options) {
      const max = options?.maxAttempts ?? 32;
      for (let attempt = 0; attempt < max; attempt++) {
        const snap = await snapshot();
        const next = await fn(snap.value);
        const v = await write(encode(next), snap.version);
        if (v === 'gone') throw gone();
        if (v !== 'conflict') return next;
        // Another instance wrote in between: back off a little (jittered) and retry on the fresh value.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
      }
      throw new FleetError('DATA_CONFLICT', `session data update lost the race ${max} times`);
    },
  };
}
