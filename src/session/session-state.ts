import type { JSONRPCMessage, LoggingLevel, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { LoggingLevelSchema } from '../transport/schemas.js';
import { FleetError, asError } from '../errors.js';
import type { SessionPatch, SessionStore } from '../store/session-store.js';
import type { FleetTransport } from '../transport/fleet-transport.js';
import { isNotification, isRequest } from '../transport/jsonrpc.js';
import type { LiveSession } from './live-session.js';

/** Most resource subscriptions one session may hold, and the longest URI (each is replayed on hydration). */
export const MAX_SUBSCRIPTIONS = 256;
export const MAX_SUBSCRIPTION_URI = 2048;

/** What {@link SessionState} needs. */
export interface SessionStateDeps {
  store: SessionStore;
  /** A write was refused because another instance owns the session now. */
  onFenced(copy: LiveSession): void;
  onError(err: Error, sessionId?: string): void;
}

/**
 * Session-wide protocol state that must survive the copy: the client's `notifications/initialized`,
 * its logging level and its resource subscriptions. The copy (the SDK server) handles them as
 * usual; once it answered successfully — and before the client sees the answer — the change is
 * written to the record (fenced by the owner's epoch), so the next owner's hydration replays it.
 * A failed write turns the answer into an error.
 */
export class SessionState {
  constructor(private readonly deps: SessionStateDeps) {}

  /**
   * Arms the persistence of the state changes among `messages` before they are dispatched to the
   * copy. Resolves once an `initialized` notification among them is recorded (best effort: a
   * failure is logged, the session goes on). Throws a 400 for subscriptions beyond the limits.
   */
  prepare(copy: LiveSession, messages: JSONRPCMessage[]): Promise<void> {
    let initialized: Promise<void> | undefined;
    for (const m of messages) {
      if (isNotification(m) && m.method === 'notifications/initialized' && !copy.record.initialized) {
        copy.record = { ...copy.record, initialized: true };
        initialized = this.write(copy, { initialized: true }).catch((err: unknown) => {
          this.deps.onError(new Error('could not record notifications/initialized', { cause: err }), copy.id);
        });
        continue;
      }
      if (!isRequest(m)) continue;
      if (m.method === 'logging/setLevel') {
        const parsed = LoggingLevelSchema.safeParse(m.params?.level);
        if (!parsed.success) continue; // the SDK answers the client with the validation error
        this.afterSuccess(copy, m.id, () => this.saveLevel(copy, parsed.data));
      } else if (m.method === 'resources/subscribe' || m.method === 'resources/unsubscribe') {
        const uri = m.params?.uri;
        if (typeof uri !== 'string') continue; // the SDK answers with the validation error
        const subscribe = m.method === 'resources/subscribe';
        if (subscribe) {
          checkSubscription(copy, uri);
          copy.pendingSubscriptions.add(uri);
        }
        this.afterSuccess(
          copy,
          m.id,
          () => this.saveSubscription(copy, subscribe, uri),
          () => copy.pendingSubscriptions.delete(uri),
        );
      }
    }
    return initialized ?? Promise.resolve();
  }

  private afterSuccess(
    copy: LiveSession,
    id: RequestId,
    persist: () => Promise<void>,
    settle: () => void = () => {},
  ): void {
    (copy.transport as FleetTransport).whenAnswered(id, async (response) => {
      try {
        if (!('result' in response)) return response;
        await persist();
        return response;
      } catch (err) {
        this.deps.onError(asError(err), copy.id);
        return {
          jsonrpc: '2.0',
          id,
          error: { code: -32603, message: 'Session store unavailable: change not saved' },
        };
      } finally {
        settle();
      }
    });
  }

  private async saveLevel(copy: LiveSession, level: LoggingLevel): Promise<void> {
    await this.write(copy, { logLevel: level });
    copy.record = { ...copy.record, logLevel: level };
  }

  /**
   * Saves one subscription change. Saves of one copy run one after another, each on top of the last,
   * so a batch (or concurrent requests) of subscribes loses none of them.
   */
  private saveSubscription(copy: LiveSession, subscribe: boolean, uri: string): Promise<void> {
    const save = async () => {
      const current = new Set(copy.record.subscriptions ?? []);
      if (subscribe) current.add(uri);
      else current.delete(uri);
      const subscriptions = [...current];
      await this.write(copy, { subscriptions });
      copy.record = { ...copy.record, subscriptions };
    };
    const next = copy.subscriptionSaves.then(save, save);
    copy.subscriptionSaves = next.catch(() => undefined); // a failed save is reported by its request
    return next;
  }

  /** A fenced record update; a refused one makes the copy step down. */
  private async write(copy: LiveSession, patch: SessionPatch): Promise<void> {
    const outcome = await this.deps.store.update(copy.id, patch, copy.fence);
    if (outcome === 'ok') return;
    if (outcome === 'fenced') this.deps.onFenced(copy);
    throw new FleetError(outcome === 'fenced' ? 'NOT_OWNER' : 'SESSION_NOT_FOUND', 'Session state not saved');
  }
}

function checkSubscription(copy: LiveSession, uri: string): void {
  if (uri.length > MAX_SUBSCRIPTION_URI) {
    throw new FleetError(
      'INVALID_REQUEST',
      `Invalid Request: resource URI longer than ${MAX_SUBSCRIPTION_URI}`,
    );
  }
  const subs = new Set([...(copy.record.subscriptions ?? []), ...copy.pendingSubscriptions]);
  if (subs.size >= MAX_SUBSCRIPTIONS && !subs.has(uri)) {
    throw new FleetError(
      'INVALID_REQUEST',
      `Invalid Request: more than ${MAX_SUBSCRIPTIONS} resource subscriptions`,
    );
  }
}
