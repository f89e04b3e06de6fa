import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createFleet, handleClientErrors, type Fleet } from 'mcp-fleet';
import { createAuthenticator } from './auth.js';
import { ConfigError, loadConfig, type AppConfig } from './config.js';
import { openDatabase } from './db/open.js';
import { createRequestListener } from './http.js';
import { isMain } from './is-main.js';
import { createLogger, type AppLogger } from './logger.js';
import { createMainServer, type ServerDeps } from './server.js';

/** Longest a graceful shutdown may take before the process exits anyway. */
export const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Share of {@link SHUTDOWN_TIMEOUT_MS} spent waiting for in-flight requests before cutting connections. */
const DRAIN_TIMEOUT_MS = 5_000;

/** A started server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:9100` (MCP at `${url}/mcp`, legacy SSE at `${url}/sse`). */
  url: string;
  /** This instance's id (the `server_id` of `health_check`). */
  instanceId: string;
  /** Graceful shutdown: readiness fails, no new connections, streams end, database closes. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link start}. */
export interface StartOptions {
  /** Logger to use instead of one built from the configuration (tests pass a silent one). */
  logger?: AppLogger;
}

/**
 * `<hostname>-<pid>-<6 random hex>`: unique per process even in containers, where every process is pid 1
 * in a pod named like its predecessor (a restarted container must not take over the old one's name).
 */
export function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/**
 * DNS-rebinding protection: when bound to loopback, only `Host`/`Origin` values naming this port on loopback
 * are accepted. Explicit `MCP_ALLOWED_HOSTS` / `MCP_ALLOWED_ORIGINS` win; elsewhere nothing is checked.
 */
export function hostPolicy(
  config: Pick<AppConfig, 'host' | 'allowedHosts' | 'allowedOrigins'>,
  port: number,
): { allowedHosts: string[]; allowedOrigins: string[] } {
  const loopback = isLoopback(config.host);
  const hosts = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  return {
    allowedHosts: config.allowedHosts ?? (loopback ? hosts : []),
    allowedOrigins: config.allowedOrigins ?? (loopback ? hosts.map((h) => `http://${h}`) : []),
  };
}

function baseUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
}

/**
 * Starts the reference server: opens the database, listens on `MCP_SERVER_HOST:MCP_SERVER_PORT`, and serves
 * `/mcp`, `/sse`, `/messages` (the fleet) plus `/livez`, `/readyz` and `/metrics` (unless
 * `METRICS_ENABLED=false`). Installs no signal handlers (see {@link main}).
 * @param config - validated configuration. @default loadConfig()
 */
export async function start(
  config: AppConfig = loadConfig(),
  options: StartOptions = {},
): Promise<RunningServer> {
  const instanceId = config.instanceId ?? defaultInstanceId();
  const logger = options.logger ?? createLogger(config, instanceId);
  if (config.jwt === undefined) {
    logger.warn(
      'JWT_SECRET_KEY is not set: MCP requests are served without authentication (development only)',
    );
  }
  if (config.redis === undefined && config.environment === 'production') {
    // Only with SINGLE_INSTANCE=true (the configuration refuses it otherwise).
    logger.warn(
      'no Redis configured (SINGLE_INSTANCE=true): sessions are kept in memory; run exactly one instance',
    );
  }

  // One registry per server: process metrics plus the fleet's (a fleet needs a registry of its own).
  let metrics: Registry | undefined;
  if (config.metricsEnabled) {
    metrics = new Registry();
    collectDefaultMetrics({ register: metrics });
  }
  const db = await openDatabase(config, logger);
  let fleet: Fleet | undefined;
  let shuttingDown = false;
  const server = createServer(
    createRequestListener({ fleet: () => fleet, shuttingDown: () => shuttingDown, logger, metrics }),
  );
  // Malformed requests Node rejects itself get a JSON-RPC error body too, and no reset.
  handleClientErrors(server);
  // Outlive the idle timeout of load balancers in front (60 s on most), so they never reuse a closed socket.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const deps: ServerDeps = {
      db,
      fleet: () => {
        if (fleet === undefined) throw new Error('fleet not created yet');
        return fleet;
      },
      sessionStore: config.redis === undefined ? 'memory' : 'redis',
      virustotal: config.virustotal,
      logger,
    };
    fleet = createFleet({
      server: (ctx) => createMainServer(ctx, deps),
      redis: config.redis,
      redisReplicasOnCreate: config.redisReplicasOnCreate,
      redisPubSub: config.redisPubSub,
      recoverSessions: config.recoverSessions,
      authenticate: config.jwt === undefined ? undefined : createAuthenticator(config.jwt),
      instanceId,
      sessionTtlMs: config.sessionTtlSeconds * 1000,
      maxSessionLifetimeMs: config.sessionMaxLifetimeSeconds * 1000,
      logger,
      metrics,
      ...hostPolicy(config, port),
    });
    const url = baseUrl(config.host, port);
    logger.info(
      {
        url,
        sessionStore: deps.sessionStore,
        database: db.kind,
        auth: config.jwt === undefined ? 'none' : `jwt ${config.jwt.algorithm}`,
        virustotal: config.virustotal !== undefined,
      },
      `MCP server listening (/mcp, /sse, /messages, /livez, /readyz${metrics ? ', /metrics' : ''})`,
    );

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        shuttingDown = true;
        logger.info('shutting down');
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        try {
          // Waits for the connections still open (a request written just before the shutdown is
          // served); the server's close callback below then comes at once.
          await fleet?.close({ server });
        } catch (err) {
          logger.error({ err }, 'fleet close failed');
        }
        // Streams the fleet just ended left their connections idle: close those now.
        server.closeIdleConnections();
        // In-flight requests get a moment to finish; then remaining connections are cut.
        const timer = setTimeout(() => server.closeAllConnections(), DRAIN_TIMEOUT_MS);
        await drained;
        clearTimeout(timer);
        await db.close().catch((err: unknown) => logger.error({ err }, 'database close failed'));
        logger.info('shutdown complete');
      })();
      return closing;
    };
    return { url, instanceId, close };
  } catch (err) {
    server.close();
    await db.close().catch(() => undefined); // the start error is the one to report
    throw err;
  }
}

/**
 * Command-line entry: loads the configuration (exit 2 when invalid), starts the server (exit 1 when that
 * fails), and shuts down gracefully on SIGTERM/SIGINT (exit 0, or 1 when it takes longer than
 * {@link SHUTDOWN_TIMEOUT_MS} or a second signal arrives).
 */
export async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  const instanceId = config.instanceId ?? defaultInstanceId();
  const logger = createLogger(config, instanceId);
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled promise rejection');
    process.exit(1);
  });

  let running: RunningServer;
  try {
    running = await start({ ...config, instanceId }, { logger });
  } catch (err) {
    logger.fatal({ err }, 'server failed to start');
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'signal received');
    setTimeout(() => {
      logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'graceful shutdown timed out');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (isMain(import.meta.url)) await main();
