// The SDK v2's `ServerEventBus` over the fleet's bus: a `list_changed` / `resources/updated` event
// published on any instance reaches the `subscriptions/listen` streams of every instance (once each:
// the publisher delivers its own locally, the others from the broadcast) and the 2025-era sessions
// this instance owns (their standalone GET streams), so one publish reaches clients of both eras.

/** An event of the SDK v2's `ServerEventBus` (structurally the same type). */
export type ServerEvent = (
  | { kind: 'tools_list_changed' }
  | { kind: 'prompts_list_changed' }
  | { kind: 'resources_list_changed' }
  | { kind: 'resource_updated'; uri: string }
) & { params?: Record<string, unknown> | undefined };

/** What `fleet.notify` offers (the SDK v2's `ServerNotifier`). */
export interface FleetNotifier {
  /** `notifications/tools/list_changed` to every listener and every session. */
  toolsChanged(): void;
  /** `notifications/prompts/list_changed` to every listener and every session. */
  promptsChanged(): void;
  /** `notifications/resources/list_changed` to every listener and every session. */
  resourcesChanged(): void;
  /** `notifications/resources/updated` to listeners and sessions subscribed to `uri`. */
  resourceUpdated(uri: string): void;
}

/** The notification a 2025-era client gets for an event. */
export function notificationOf(event: ServerEvent): { method: string; params?: Record<string, unknown> } {
  const extra = event.params ?? {};
  switch (event.kind) {
    case 'tools_list_changed':
      return { method: 'notifications/tools/list_changed', params: extra };
    case 'prompts_list_changed':
      return { method: 'notifications/prompts/list_changed', params: extra };
    case 'resources_list_changed':
      return { method: 'notifications/resources/list_changed', params: extra };
    case 'resource_updated':
      return { method: 'notifications/resources/updated', params: { ...extra, uri: event.uri } };
  }
}

export interface FleetEventBusDeps {
  /** Sends the event to the other instances (fire and forget: failures are reported). */
  broadcast(event: ServerEvent): Promise<void>;
  /** Delivers the event to the 2025-era sessions owned here. */
  toSessions(event: ServerEvent): void;
  onError(err: Error): void;
}

/** `ServerEventBus` (SDK v2) shared by the fleet: `publish` is synchronous, as the interface wants. */
export class FleetEventBus {
  private readonly listeners = new Set<(event: ServerEvent) => void>();

  constructor(private readonly deps: FleetEventBusDeps) {}

  get listenerCount(): number {
    return this.listeners.size;
  }

  publish(event: ServerEvent): void {
    this.deliver(event);
    this.deps.broadcast(event).catch((err: unknown) => {
      this.deps.onError(new Error('event broadcast failed', { cause: err }));
    });
  }

  subscribe(listener: (event: ServerEvent) => void): () => void {
    // A wrapper per call: subscribing the same function twice gives two independent subscriptions.
    const entry = (event: ServerEvent) => listener(event);
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  /** An event another instance published. */
  received(event: ServerEvent): void {
    this.deliver(event);
  }

  readonly notify: FleetNotifier = {
    toolsChanged: () => this.publish({ kind: 'tools_list_changed' }),
    promptsChanged: () => this.publish({ kind: 'prompts_list_changed' }),
    resourcesChanged: () => this.publish({ kind: 'resources_list_changed' }),
    resourceUpdated: (uri) => this.publish({ kind: 'resource_updated', uri }),
  };

  private deliver(event: ServerEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.deps.onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
    try {
      this.deps.toSessions(event);
    } catch (err) {
      this.deps.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
