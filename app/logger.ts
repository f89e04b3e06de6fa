import { createRequire } from 'node:module';
import { pino, type Logger as PinoLogger, type LoggerOptions } from 'pino';
import type { AppConfig } from './config.js';

/** The application logger (pino). */
export type AppLogger = PinoLogger;

/**
 * Paths whose values never reach a log line: credentials in request headers, tokens, secrets, API keys and
 * connection URLs (which may embed passwords), at the top level or up to two levels deep.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-apikey"]',
  ...[
    'authorization',
    'cookie',
    'token',
    'secret',
    'apiKey',
    'password',
    'sentinelPassword',
    'databaseUrl',
    'redisUrl',
  ].flatMap((key) => [key, `*.${key}`, `*.*.${key}`]),
];

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false; // a production install without dev dependencies: fall back to JSON
  }
}

/**
 * Builds the process logger: JSON lines in production, pino-pretty in development (when installed), secrets
 * redacted, and `instanceId` bound to every line.
 * @param destination - where JSON lines go (tests pass a stream). @default stdout
 */
export function createLogger(
  config: Pick<AppConfig, 'environment' | 'logLevel'>,
  instanceId: string,
  destination?: NodeJS.WritableStream,
): AppLogger {
  const options: LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = destination === undefined && config.environment === 'development' && prettyAvailable();
  const root = pretty
    ? pino({
        ...options,
        transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
      })
    : destination === undefined
      ? pino(options)
      : pino(options, destination);
  return root.child({ instanceId });
}
