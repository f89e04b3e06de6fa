import type { Logger } from '../logger.js';
import type { FleetMetrics } from '../metrics.js';
import type { ResolvedOptions } from '../options.js';
import type { ModernEra } from '../modern/modern-era.js';
import type { SessionService } from '../session/session-service.js';

/** What the HTTP fronts (Streamable HTTP and legacy) need: they parse, check and write, nothing else. */
export interface HttpContext {
  options: ResolvedOptions;
  service: SessionService;
  /** The 2026-07-28 era (no sessions): requests whose body carries the revision envelope. */
  modern: ModernEra;
  metrics: FleetMetrics;
  logger: Logger;
  /** Resolves when the store can take commands (waits briefly during a connect), else rejects with 503. */
  storeGate(): Promise<void>;
  /** True once the fleet is closed: new requests get 503. */
  closed(): boolean;
  /** True from `close()` on: answers ask clients to open new connections (elsewhere). */
  draining(): boolean;
}
