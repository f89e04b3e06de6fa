/** Anything JSON-serializable sent between instances. The `t` field names the kind. */
export interface BusMessage {
  t: string;
  [key: string]: unknown;
}

/**
 * Messaging between instances: one channel per instance plus one broadcast channel (never one per
 * session). Delivery is at-most-once, in order per sender; senders that need certainty wait for an
 * explicit reply message.
 */
export interface MessageBus {
  /** Subscribes this instance's channel and the broadcast channel; resolves once subscribed. */
  start(instanceId: string, onMessage: (message: BusMessage) => void): Promise<void>;
  /** Sends to one instance; resolves to the number of receivers (0: that instance is gone). */
  send(instanceId: string, message: BusMessage): Promise<number>;
  /** Sends to every instance, this one included. */
  broadcast(message: BusMessage): Promise<void>;
  close(): Promise<void>;
}
