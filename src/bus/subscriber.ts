/** What a {@link Subscriber} reports to the bus. */
export interface SubscriberHooks {
  /** Every channel is subscribed (again). */
  onUp(): void;
  /** Some channel stopped being subscribed: messages sent to it now are lost. */
  onDown(): void;
  onMessage(channel: string, payload: string): void;
  /** Non-fatal: connection errors while Redis is away, a slot moving. */
  onError(err: unknown): void;
}

/** Keeps a fixed set of channels subscribed, across reconnects and Redis failovers. */
export interface Subscriber {
  /**
   * Resolves once every channel was subscribed the first time, however long Redis is away. Rejects
   * when the subscriber is closed first, or when subscribing can never succeed.
   */
  start(): Promise<void>;
  /** Every channel is subscribed right now. */
  isUp(): boolean;
  /** Ends the subscriptions' connections, waiting at most `timeoutMs` for a clean goodbye. */
  close(timeoutMs: number): Promise<void>;
}
