/** Anything JSON-serializable sent between instances; `t` names its kind (see `protocol.ts`). */
export interface BusPayload {
  t: string;
  [key: string]: unknown;
}

/**
 * Messaging between instances: one channel per instance plus one broadcast channel (never one per
 * session). Delivery is at-most-once, in order per sender and channel (a message to one instance
 * may overtake an earlier broadcast: on a Cluster the two channels live on different shards);
 * senders that need certainty wait for an explicit reply message. Messages travel as JSON; receivers get the parsed value, unvalidated (the
 * {@link BusDispatcher} decodes it).
 */
export interface MessageBus<M extends BusPayload = BusPayload> {
  /** Subscribes this instance's channel and the broadcast channel; resolves once subscribed. */
  start(instanceId: string, onMessage: (message: unknown) => void): Promise<void>;
  /** Sends to one instance; resolves to the number of receivers (0: that instance is gone). */
  send(instanceId: string, message: M): Promise<number>;
  /** Sends to every instance, this one included. */
  broadcast(message: M): Promise<void>;
  /** True while this instance's channels are subscribed. */
  isUp(): boolean;
  /** Resolves true once the channels are subscribed (at once if they are), false after `timeoutMs`. */
  whenUp(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}
