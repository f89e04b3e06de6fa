import { decodeBusMessage, type BusKind, type BusMessage, type BusMessageOf } from './protocol.js';

/**
 * The one place bus messages are handled: each kind has exactly one handler, registered by the
 * module that owns the concern. Malformed messages and throwing handlers are reported, never thrown.
 */
export class BusDispatcher {
  private readonly handlers = new Map<BusKind, (message: BusMessage) => void>();

  constructor(
    private readonly onError: (err: Error) => void,
    /** Called with each decoded message before its handler (metrics). */
    private readonly observe: (message: BusMessage) => void = () => {},
  ) {}

  /** Registers the handler of one kind (once: a second registration is a programming error). */
  on<K extends BusKind>(kind: K, handler: (message: BusMessageOf<K>) => void): void {
    if (this.handlers.has(kind)) throw new Error(`bus message kind ${kind} already has a handler`);
    this.handlers.set(kind, handler as (message: BusMessage) => void);
  }

  /** Decodes a received value and runs its handler. */
  dispatch(value: unknown): void {
    const message = decodeBusMessage(value);
    if (message instanceof Error) {
      this.onError(message);
      return;
    }
    this.observe(message);
    const handler = this.handlers.get(message.t);
    if (!handler) return; // a kind this instance does not take part in (e.g. legacy disabled)
    try {
      handler(message);
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
