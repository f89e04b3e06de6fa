import type { BusPayload, MessageBus } from './message-bus.js';

/** Receives the serialized messages of one started {@link MemoryBus}. */
type Receiver = (payload: string) => void;

/**
 * The "server" that {@link MemoryBus} instances of one process talk through. Create one and hand it
 * to every bus that should hear the others (several instances in one test process, for example).
 */
export class MemoryBusHub {
  private readonly byInstance = new Map<string, Set<Receiver>>();
  private readonly everyone = new Set<Receiver>();

  /** Adds a receiver for an instance channel and the broadcast channel; returns its removal. */
  join(instanceId: string, receiver: Receiver): () => void {
    let set = this.byInstance.get(instanceId);
    if (!set) this.byInstance.set(instanceId, (set = new Set()));
    set.add(receiver);
    this.everyone.add(receiver);
    return () => {
      this.everyone.delete(receiver);
      set.delete(receiver);
      if (set.size === 0 && this.byInstance.get(instanceId) === set) this.byInstance.delete(instanceId);
    };
  }

  /** Delivers to the receivers of one instance; returns how many there were (as PUBLISH does). */
  publish(instanceId: string, payload: string): number {
    const set = this.byInstance.get(instanceId);
    if (!set) return 0;
    for (const receive of set) receive(payload);
    return set.size;
  }

  /** Delivers to every receiver. */
  broadcast(payload: string): void {
    for (const receive of this.everyone) receive(payload);
  }
}

/** Options of {@link MemoryBus}. */
export interface MemoryBusOptions {
  /**
   * Called when a message handler throws (the bus keeps delivering).
   * @default undefined (the error is dropped)
   */
  onError?: (err: unknown) => void;
}

/**
 * {@link MessageBus} inside one process, through a shared {@link MemoryBusHub}. Messages travel as
 * JSON, like over Redis, so receivers never share objects with the sender, and they are delivered
 * asynchronously (never inside `send`), in the order they were sent.
 */
export class MemoryBus implements MessageBus {
  private leave: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly hub: MemoryBusHub,
    private readonly opts: MemoryBusOptions = {},
  ) {}

  /** True between {@link start} and {@link close} (an in-process hub never loses a subscription). */
  isUp(): boolean {
    return this.leave !== undefined && !this.closed;
  }

  /** {@inheritDoc MessageBus.whenUp} An in-process hub is joined as soon as `start` is called. */
  async whenUp(_timeoutMs: number): Promise<boolean> {
    return this.isUp();
  }

  /** {@inheritDoc MessageBus.start} */
  async start(instanceId: string, onMessage: (message: unknown) => void): Promise<void> {
    if (this.closed) throw new Error('MemoryBus is closed');
    if (this.leave) throw new Error('MemoryBus is already started');
    this.leave = this.hub.join(instanceId, (payload) => {
      // setImmediate (not a microtask) keeps FIFO order and lets I/O run between deliveries, so two
      // buses replying to each other cannot starve the process.
      setImmediate(() => {
        if (this.closed) return;
        try {
          onMessage(JSON.parse(payload) as unknown);
        } catch (err) {
          this.opts.onError?.(err);
        }
      });
    });
  }

  /** {@inheritDoc MessageBus.send} */
  async send(instanceId: string, message: BusPayload): Promise<number> {
    return this.hub.publish(instanceId, JSON.stringify(message));
  }

  /** {@inheritDoc MessageBus.broadcast} */
  async broadcast(message: BusPayload): Promise<void> {
    this.hub.broadcast(JSON.stringify(message));
  }

  /** Leaves the hub; messages still queued for this bus are dropped. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.leave?.();
    this.leave = undefined;
  }
}
