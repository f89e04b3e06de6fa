import { parseArgs } from 'node:util';
import { signToken } from './auth.js';
import { ConfigError, loadConfig } from './config.js';
import { isMain } from './is-main.js';

const USAGE = 'usage: npm run token -- --sub <principal> [--ttl <seconds>] [--scope "<scopes>"]';

/**
 * `npm run token -- --sub alice [--ttl 3600] [--scope "read write"]`: prints a development JWT signed with
 * `JWT_SECRET_KEY` / `JWT_ALGORITHM` from the environment or `.env`. Exit 2 on bad arguments or configuration.
 */
export async function tokenCli(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { sub: { type: 'string' }, ttl: { type: 'string' }, scope: { type: 'string' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  if (values.sub === undefined || values.sub.trim() === '') {
    process.stderr.write(`--sub is required\n${USAGE}\n`);
    return 2;
  }
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 366 * 24 * 3600) {
    process.stderr.write(`--ttl: expected a whole number of seconds from 1 to 31622400\n${USAGE}\n`);
    return 2;
  }
  let jwt;
  try {
    jwt = loadConfig().jwt;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }
  if (jwt === undefined) {
    process.stderr.write(
      'JWT_SECRET_KEY: required to sign a token (expected a secret of at least 32 characters)\n',
    );
    return 2;
  }
  const token = await signToken(jwt, {
    sub: values.sub,
    ttlSeconds: ttl,
    ...(values.scope === undefined ? {} : { scope: values.scope }),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

if (isMain(import.meta.url)) process.exitCode = await tokenCli(process.argv.slice(2));
