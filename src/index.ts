// The public surface of mcp-fleet: every export is listed by name (adding one is an API decision).
export { createFleet } from './fleet.js';
export { handleClientErrors } from './http/client-errors.js';
export { FleetError, UnauthorizedError, ERROR_TABLE } from './errors.js';
export type { FleetErrorCode } from './errors.js';
export type {
  AuthInfo,
  Fleet,
  FleetHandler,
  FleetCloseOptions,
  FleetHealth,
  FleetServerEventBus,
  FleetOptions,
  JsonValue,
  Principal,
  SdkServer,
  ServerFactory,
  SessionCloseReason,
  SessionContext,
  SessionOrigin,
  SessionData,
  SessionDataSnapshot,
} from './types.js';
export type { Logger } from './logger.js';
export type { RedisClusterConfig, RedisConnection, RedisSentinelConfig } from './redis/connect.js';
export type { FleetNotifier, ServerEvent } from './modern/event-bus.js';
export type { FleetRequestState, RequestStateOptions } from './modern/request-state.js';
