import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

const INSTALL_HINT =
  'initdb and pg_ctl are required by the PostgreSQL tests and were not found on PATH or in /usr/lib/postgresql/*/bin. ' +
  'Install them with `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql` (macOS), ' +
  'or set TEST_DATABASE_URL to a server the tests may create databases in.';

/** A PostgreSQL database that exists only for the tests. */
export interface TestPostgres {
  /** `postgres://user@127.0.0.1:<port>/<db>` */
  readonly url: string;
  /** Drops the database (TEST_DATABASE_URL) or kills the server and removes its directory. */
  stop(): Promise<void>;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The directory holding both initdb and pg_ctl: PATH first, then Debian's versioned directories. */
function findBinDir(): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => join(debian, v, 'bin')));
  }
  const dir = dirs.find((d) => executable(join(d, 'initdb')) && executable(join(d, 'pg_ctl')));
  if (!dir) throw new Error(INSTALL_HINT);
  return dir;
}

/** Fails (never skips) when initdb/pg_ctl are missing and TEST_DATABASE_URL is not set. */
export function assertPostgresInstalled(): void {
  if (!process.env.TEST_DATABASE_URL) findBinDir();
}

interface RunAs {
  /** Turns `bin args…` into the command actually spawned. */
  wrap(bin: string, args: string[]): [string, string[]];
  uid: number;
  gid: number;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** initdb refuses to run as root, so as root every command runs as the `postgres` OS user. */
function runAs(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) {
    throw new Error(
      'running as root: initdb refuses root and there is no `postgres` OS user to run it as ' +
        '(`apt-get install postgresql` creates one, or `useradd --system postgres`)',
    );
  }
  const hasRunuser = spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status === 0;
  return {
    uid: Number(u.stdout.trim()),
    gid: Number(g.stdout.trim()),
    wrap: (bin, args) =>
      hasRunuser
        ? ['runuser', ['-u', 'postgres', '--', bin, ...args]]
        : ['su', ['postgres', '-s', '/bin/sh', '-c', [bin, ...args].map(shellQuote).join(' ')]],
  };
}

function run(cmd: [string, string[]], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd[0], cmd[1], { cwd, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err)
        reject(new Error(`${cmd[0]} ${cmd[1].join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function canConnect(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query('select 1');
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Clusters started by this process, stopped by the exit hook if a test forgot to. */
const running = new Map<string, () => void>();
process.on('exit', () => {
  for (const stopSync of running.values()) stopSync();
});

async function startLocal(): Promise<TestPostgres> {
  const bin = findBinDir();
  const as = runAs();
  const wrap = (name: string, args: string[]): [string, string[]] =>
    as ? as.wrap(join(bin, name), args) : [join(bin, name), args];

  const dir = mkdtempSync(join(tmpdir(), 'mcp-fleet-pg-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const removeDir = () => rmSync(dir, { recursive: true, force: true });

  try {
    await run(
      wrap('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']),
      dir,
    );
  } catch (err) {
    removeDir();
    throw err;
  }

  const stopCmd = wrap('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w']);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -F -c full_page_writes=off`;
    try {
      await run(wrap('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '30', '-o', opts]), dir);
    } catch (err) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      // freePort() is racy: retry on another port if someone took this one meanwhile.
      if (attempt < 3 && /already in use|could not bind/i.test(log)) continue;
      removeDir();
      throw new Error(`${(err as Error).message}\npostgres log:\n${log}`);
    }

    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const stopSync = () => {
      spawnSync(stopCmd[0], stopCmd[1], { cwd: dir, stdio: 'ignore' });
      removeDir();
    };
    running.set(dir, stopSync);
    try {
      await canConnect(url);
    } catch (err) {
      running.delete(dir);
      stopSync();
      throw err;
    }
    return {
      url,
      async stop() {
        if (!running.delete(dir)) return;
        await run(stopCmd, dir).catch(() => undefined);
        removeDir();
      },
    };
  }
}

async function startOnServer(base: string): Promise<TestPostgres> {
  const db = `mcp_fleet_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  await admin(`CREATE DATABASE "${db}"`);
  const u = new URL(base);
  u.pathname = `/${db}`;
  const url = u.toString();
  try {
    await canConnect(url);
  } catch (err) {
    await admin(`DROP DATABASE IF EXISTS "${db}"`).catch(() => undefined);
    throw err;
  }
  let stopped = false;
  return {
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      // WITH (FORCE) (PostgreSQL 13+) also ends connections a test left open.
      await admin(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() =>
        admin(`DROP DATABASE IF EXISTS "${db}"`),
      );
    },
  };
}

/**
 * A throwaway PostgreSQL. With env TEST_DATABASE_URL, a uniquely named database is created on that server
 * (and dropped by stop()). Otherwise a private server is initialised in a temp dir with initdb and started with
 * pg_ctl on a free port of 127.0.0.1 (trust auth, user `postgres`, no fsync); stop() kills it
 * (`pg_ctl stop -m immediate`) and removes the dir. When running as root, initdb and pg_ctl run as the
 * `postgres` OS user. Throws an Error naming the package to install when the binaries are missing.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const base = process.env.TEST_DATABASE_URL;
  return base ? startOnServer(base) : startLocal();
}
