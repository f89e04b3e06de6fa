import type { Logger } from '../../src/index.js';

/** One line a {@link recordingLogger} was told. */
export interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
}

/** A Logger that keeps what it is told, in order, in `lines`. */
export function recordingLogger(lines: Line[]): Logger {
  const at =
    (level: Line['level']) =>
    (_obj: object, msg?: string): void => {
      lines.push({ level, msg: msg ?? '' });
    };
  const logger: Logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}
