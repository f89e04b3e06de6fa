import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import type { RedisConnection } from 'mcp-fleet';

/** HMAC algorithms accepted for `JWT_ALGORITHM` (shared-secret tokens only). */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** A value of `JWT_ALGORITHM`. */
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** pino levels accepted for `LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A value of `LOG_LEVEL`. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Validated configuration of the reference server. Build it with {@link loadConfig} or {@link parseConfig}. */
export interface AppConfig {
  /** `development` or `production`; production requires JWT auth and logs JSON. */
  environment: 'development' | 'production';
  /** Interface to bind (`MCP_SERVER_HOST`). */
  host: string;
  /** Port to bind (`MCP_SERVER_PORT`); 0 picks a free port. */
  port: number;
  /** PostgreSQL URL; `undefined` → embedded, in-memory PGlite seeded with sample data. */
  databaseUrl: string | undefined;
  /**
   * Where sessions live: a Redis URL (`REDIS_URL`), Sentinel (`REDIS_SENTINELS` + `REDIS_SENTINEL_NAME`)
   * or Cluster (`REDIS_CLUSTER_NODES`); `undefined` → in-memory sessions (one instance only).
   */
  redis: RedisConnection | undefined;
  /** Replicas that must have a new session before `initialize` is answered (`REDIS_REPLICAS_ON_CREATE`). */
  redisReplicasOnCreate: number;
  /** Pub/sub flavour on a Cluster (`REDIS_PUBSUB`). */
  redisPubSub: 'sharded' | 'classic';
  /** Re-create sessions the store lost under their client's id (`RECOVER_SESSIONS`; risks in the README). */
  recoverSessions: boolean;
  /**
   * JWT verification settings; `undefined` → anonymous access (development only). `issuer` / `audience`, when
   * set, are required values of the `iss` / `aud` claims.
   */
  jwt: { secret: string; algorithm: JwtAlgorithm; issuer?: string; audience?: string } | undefined;
  /** VirusTotal settings; `undefined` → the `virustotal_*` tools are not offered. */
  virustotal: { apiKey: string; baseUrl: string } | undefined;
  /** Instance id for logs and `health_check`; `undefined` → `${hostname}-${pid}`. */
  instanceId: string | undefined;
  /** Sliding idle lifetime of an MCP session, in seconds; at most {@link sessionMaxLifetimeSeconds}. */
  sessionTtlSeconds: number;
  /** Absolute lifetime of an MCP session however active, in seconds (`SESSION_MAX_LIFETIME_SECONDS`). */
  sessionMaxLifetimeSeconds: number;
  /** pino log level. */
  logLevel: LogLevel;
  /** Allowed `Host` header values; `undefined` → derived from host/port when bound to loopback. */
  allowedHosts: string[] | undefined;
  /** Allowed `Origin` header values; `undefined` → derived from host/port when bound to loopback. */
  allowedOrigins: string[] | undefined;
  /** Serve Prometheus metrics at `GET /metrics` (`METRICS_ENABLED`). */
  metricsEnabled: boolean;
  /**
   * `SINGLE_INSTANCE=true`: the operator runs exactly one instance, so production may keep sessions in
   * memory (without it, production requires `REDIS_URL`, `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES`).
   */
  singleInstance: boolean;
}

/** A configuration problem: the message names every bad variable and what it expects. Exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Process exit code for configuration errors. */
  readonly exitCode = 2;
}

/** Variables whose values are never echoed in error messages (they may hold credentials). */
const SECRET_VARS = new Set([
  'JWT_SECRET_KEY',
  'VIRUSTOTAL_API_KEY',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_PASSWORD',
  'REDIS_SENTINEL_PASSWORD',
]);

/** `''` in an env file means "not set". */
const blankToUndefined = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);

function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess(blankToUndefined, schema.optional());
}

function integer(min: number, max: number, fallback: number) {
  const expected = `expected an integer from ${min} to ${max}`;
  return z.preprocess(
    blankToUndefined,
    z
      .string({ error: expected })
      .regex(/^\d+$/, { error: expected })
      .transform(Number)
      .pipe(z.number().int().min(min, { error: expected }).max(max, { error: expected }))
      .default(fallback),
  );
}

function urlWithScheme(schemes: readonly string[]) {
  const expected = `expected a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`;
  return z.string().refine(
    (v) => {
      try {
        return schemes.includes(new URL(v).protocol.slice(0, -1));
      } catch {
        return false; // not parseable at all: same answer as a wrong scheme
      }
    },
    { error: expected },
  );
}

function enumVar<const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) {
  return z.preprocess(
    blankToUndefined,
    z.enum(values, { error: `expected one of ${values.join(', ')}` }).default(fallback),
  );
}

function booleanVar(fallback: boolean) {
  return z.preprocess(
    blankToUndefined,
    z
      .enum(['true', 'false', '1', '0'], { error: 'expected true, false, 1 or 0' })
      .transform((v) => v === 'true' || v === '1')
      .default(fallback),
  );
}

/** A comma-separated list. A value with no entries at all (`,`) is an error: blank means unset. */
function commaList() {
  return z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    )
    .refine((list) => list.length > 0, {
      error: 'expected a comma-separated list of at least one value (leave it unset for the default)',
    });
}

/** A comma-separated list of `host:port` (Sentinel or Cluster nodes). */
function hostPortList() {
  const expected = 'expected a comma-separated list of host:port (e.g. redis-0:26379,redis-1:26379)';
  return commaList().pipe(
    z.array(
      z
        .string()
        .regex(/^[^\s:]+:\d{1,5}$/, { error: expected })
        .transform((hp) => {
          const at = hp.lastIndexOf(':');
          return { host: hp.slice(0, at), port: Number(hp.slice(at + 1)) };
        })
        .refine((n) => n.port > 0 && n.port <= 65_535, { error: expected }),
    ),
  );
}

/** Longest `SESSION_TTL_SECONDS` / `SESSION_MAX_LIFETIME_SECONDS`: 31 days. */
const MAX_SESSION_SECONDS = 31 * 24 * 3600;

const HOST_PATTERN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]+)$/;

const envSchema = z
  .object({
    ENVIRONMENT: enumVar(['development', 'production'], 'development'),
    MCP_SERVER_HOST: z.preprocess(
      blankToUndefined,
      z
        .string()
        .regex(HOST_PATTERN, { error: 'expected a host name or an IP address (e.g. 127.0.0.1 or 0.0.0.0)' })
        .default('127.0.0.1'),
    ),
    MCP_SERVER_PORT: integer(0, 65_535, 9100),
    DATABASE_URL: optional(urlWithScheme(['postgres', 'postgresql'])),
    REDIS_URL: optional(urlWithScheme(['redis', 'rediss'])),
    REDIS_SENTINELS: optional(hostPortList()),
    REDIS_SENTINEL_NAME: optional(
      z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, { error: 'expected the master name of the sentinels' }),
    ),
    REDIS_SENTINEL_PASSWORD: optional(z.string()),
    REDIS_CLUSTER_NODES: optional(hostPortList()),
    REDIS_USERNAME: optional(
      z.string().regex(/^[\x21-\x7e]{1,256}$/, { error: 'expected an ACL user name' }),
    ),
    REDIS_PASSWORD: optional(z.string()),
    REDIS_TLS: booleanVar(false),
    REDIS_REPLICAS_ON_CREATE: integer(0, 5, 0),
    REDIS_PUBSUB: enumVar(['sharded', 'classic'], 'sharded'),
    JWT_SECRET_KEY: optional(
      z.string().min(32, { error: 'expected a secret of at least 32 characters (256 bits)' }),
    ),
    JWT_ALGORITHM: enumVar(JWT_ALGORITHMS, 'HS256'),
    JWT_ISSUER: optional(z.string().trim().max(1000, { error: 'expected at most 1000 characters' })),
    JWT_AUDIENCE: optional(z.string().trim().max(1000, { error: 'expected at most 1000 characters' })),
    VIRUSTOTAL_API_KEY: optional(
      z
        .string()
        .regex(/^[\x21-\x7e]+$/, { error: 'expected an API key without spaces or control characters' }),
    ),
    VIRUSTOTAL_BASE_URL: z.preprocess(
      blankToUndefined,
      urlWithScheme(['https', 'http']).default('https://www.virustotal.com/api/v3'),
    ),
    INSTANCE_ID: optional(
      z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'expected 1-64 characters of A-Z a-z 0-9 . _ -' }),
    ),
    SESSION_TTL_SECONDS: integer(10, MAX_SESSION_SECONDS, 3600),
    SESSION_MAX_LIFETIME_SECONDS: integer(10, MAX_SESSION_SECONDS, 86_400),
    LOG_LEVEL: enumVar(LOG_LEVELS, 'info'),
    MCP_ALLOWED_HOSTS: optional(commaList()),
    MCP_ALLOWED_ORIGINS: optional(commaList()),
    METRICS_ENABLED: booleanVar(true),
    SINGLE_INSTANCE: booleanVar(false),
    RECOVER_SESSIONS: booleanVar(false),
  })
  .superRefine((env, ctx) => {
    if (env.ENVIRONMENT === 'production' && env.JWT_SECRET_KEY === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET_KEY'],
        message: 'required when ENVIRONMENT=production (anonymous access is for development only)',
      });
    }
    const noRedis =
      env.REDIS_URL === undefined &&
      env.REDIS_SENTINELS === undefined &&
      env.REDIS_CLUSTER_NODES === undefined;
    if (env.ENVIRONMENT === 'production' && noRedis && !env.SINGLE_INSTANCE) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_URL'],
        message:
          'required when ENVIRONMENT=production (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES): without it every replica keeps its own sessions in memory and clients get 404 on the others (set SINGLE_INSTANCE=true to run exactly one instance that way)',
      });
    }
    for (const name of ['JWT_ISSUER', 'JWT_AUDIENCE'] as const) {
      if (env[name] !== undefined && env.JWT_SECRET_KEY === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'only checked on tokens: set JWT_SECRET_KEY too, or unset this',
        });
      }
    }
    const kinds = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter(
      (k) => env[k] !== undefined,
    );
    if (kinds.length > 1) {
      for (const k of kinds) {
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: `set only one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES (got ${kinds.join(', ')})`,
        });
      }
    }
    if (env.REDIS_SENTINELS !== undefined && env.REDIS_SENTINEL_NAME === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_SENTINEL_NAME'],
        message: 'required with REDIS_SENTINELS: the master name the sentinels monitor',
      });
    }
    for (const k of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (env[k] !== undefined && env.REDIS_SENTINELS === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: 'only used with REDIS_SENTINELS: set it too, or unset this',
        });
      }
    }
    const nodes = env.REDIS_SENTINELS !== undefined || env.REDIS_CLUSTER_NODES !== undefined;
    for (const k of ['REDIS_USERNAME', 'REDIS_PASSWORD'] as const) {
      if (env[k] !== undefined && !nodes) {
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message:
            env.REDIS_URL !== undefined
              ? 'with REDIS_URL, put the credentials in the URL (redis://user:password@host:port)'
              : 'only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES',
        });
      }
    }
    if (env.REDIS_TLS && !nodes) {
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_TLS'],
        message:
          env.REDIS_URL !== undefined
            ? 'with REDIS_URL, use a rediss:// URL for TLS'
            : 'only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES',
      });
    }
    if (env.SESSION_TTL_SECONDS > env.SESSION_MAX_LIFETIME_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_TTL_SECONDS'],
        message: `expected at most SESSION_MAX_LIFETIME_SECONDS (${env.SESSION_MAX_LIFETIME_SECONDS}): every session ends at its maximum lifetime, however active`,
      });
    }
  });

/** The `redis` option of the fleet from the validated variables. */
function redisConnection(e: z.infer<typeof envSchema>): RedisConnection | undefined {
  const auth = {
    ...(e.REDIS_USERNAME === undefined ? {} : { username: e.REDIS_USERNAME }),
    ...(e.REDIS_PASSWORD === undefined ? {} : { password: e.REDIS_PASSWORD }),
    ...(e.REDIS_TLS ? { tls: true } : {}),
  };
  if (e.REDIS_SENTINELS !== undefined) {
    return {
      sentinels: e.REDIS_SENTINELS,
      name: e.REDIS_SENTINEL_NAME!,
      ...auth,
      ...(e.REDIS_SENTINEL_PASSWORD === undefined ? {} : { sentinelPassword: e.REDIS_SENTINEL_PASSWORD }),
    };
  }
  if (e.REDIS_CLUSTER_NODES !== undefined) return { nodes: e.REDIS_CLUSTER_NODES, ...auth };
  return e.REDIS_URL;
}

function describeIssue(issue: z.core.$ZodIssue, env: Record<string, string | undefined>): string {
  const name = String(issue.path[0] ?? 'configuration');
  const raw = env[name];
  const got =
    raw === undefined || raw === ''
      ? ''
      : SECRET_VARS.has(name)
        ? ' (value hidden)'
        : ` (got ${JSON.stringify(raw)})`;
  return `  ${name}: ${issue.message}${got}`;
}

/**
 * Validates configuration variables. Throws {@link ConfigError} listing every bad variable.
 * @param env - variables, e.g. `process.env` merged with a `.env` file.
 */
export function parseConfig(env: Record<string, string | undefined>): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => describeIssue(issue, env));
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    environment: e.ENVIRONMENT,
    host: e.MCP_SERVER_HOST,
    port: e.MCP_SERVER_PORT,
    databaseUrl: e.DATABASE_URL,
    redis: redisConnection(e),
    redisReplicasOnCreate: e.REDIS_REPLICAS_ON_CREATE,
    redisPubSub: e.REDIS_PUBSUB,
    recoverSessions: e.RECOVER_SESSIONS,
    jwt:
      e.JWT_SECRET_KEY === undefined
        ? undefined
        : {
            secret: e.JWT_SECRET_KEY,
            algorithm: e.JWT_ALGORITHM,
            ...(e.JWT_ISSUER === undefined ? {} : { issuer: e.JWT_ISSUER }),
            ...(e.JWT_AUDIENCE === undefined ? {} : { audience: e.JWT_AUDIENCE }),
          },
    virustotal:
      e.VIRUSTOTAL_API_KEY === undefined
        ? undefined
        : { apiKey: e.VIRUSTOTAL_API_KEY, baseUrl: e.VIRUSTOTAL_BASE_URL.replace(/\/+$/, '') },
    instanceId: e.INSTANCE_ID,
    sessionTtlSeconds: e.SESSION_TTL_SECONDS,
    sessionMaxLifetimeSeconds: e.SESSION_MAX_LIFETIME_SECONDS,
    logLevel: e.LOG_LEVEL,
    allowedHosts: e.MCP_ALLOWED_HOSTS,
    allowedOrigins: e.MCP_ALLOWED_ORIGINS,
    metricsEnabled: e.METRICS_ENABLED,
    singleInstance: e.SINGLE_INSTANCE,
  };
}

/**
 * Reads the configuration from the environment and a `.env` file; a variable set in the environment wins
 * over the file. The environment itself is not modified.
 * @param env - the process environment. @default process.env
 * @param envFile - path of the dotenv file (missing file → ignored). @default '.env' in the working directory
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  envFile: string = resolve(process.cwd(), '.env'),
): AppConfig {
  let fromFile: Record<string, string> = {};
  if (existsSync(envFile)) {
    try {
      fromFile = parseDotenv(readFileSync(envFile));
    } catch (err) {
      throw new ConfigError(`Cannot read ${envFile}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return parseConfig({ ...fromFile, ...env });
}
