import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { verifyToken } from '../../app/auth.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const SECRET = 'cli-test-secret-'.padEnd(40, 'x');
/** Scripts run in an empty directory so a developer's own .env never leaks into the tests. */
const EMPTY_DIR = mkdtempSync(join(tmpdir(), 'app-cli-cwd-'));
process.on('exit', () => rmSync(EMPTY_DIR, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an app script with only the given variables (plus PATH/HOME), in `cwd` (where a .env may be). */
function run(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
  cwd = EMPTY_DIR,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [join(ROOT, script), ...args], {
      cwd,
      // The project's tsconfig (found from the cwd otherwise) maps `mcp-fleet` to src/, as in every test.
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('app/main.ts configuration errors', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'app-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 naming the variable and what is expected', async () => {
    const r = await run('app/main.ts', { MCP_SERVER_PORT: 'abc', JWT_ALGORITHM: 'RS256' }, [], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /MCP_SERVER_PORT: expected an integer from 0 to 65535 \(got "abc"\)/);
    assert.match(r.stderr, /JWT_ALGORITHM: expected one of HS256, HS384, HS512/);
  });

  it('refuses production without JWT_SECRET_KEY', async () => {
    const r = await run('app/main.ts', { ENVIRONMENT: 'production' }, [], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /JWT_SECRET_KEY: required when ENVIRONMENT=production/);
  });

  it('refuses production without REDIS_URL unless SINGLE_INSTANCE=true', async () => {
    const r = await run('app/main.ts', { ENVIRONMENT: 'production', JWT_SECRET_KEY: SECRET }, [], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /REDIS_URL: required when ENVIRONMENT=production/);
    assert.match(r.stderr, /SINGLE_INSTANCE=true/);
  });

  it('exits 2 for an empty allow-list and an idle TTL beyond the session lifetime', async () => {
    const r = await run(
      'app/main.ts',
      { MCP_ALLOWED_HOSTS: ',', SESSION_TTL_SECONDS: '7200', SESSION_MAX_LIFETIME_SECONDS: '3600' },
      [],
      dir,
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /MCP_ALLOWED_HOSTS: expected a comma-separated list of at least one value/);
    assert.match(r.stderr, /SESSION_TTL_SECONDS: expected at most SESSION_MAX_LIFETIME_SECONDS \(3600\)/);
  });

  it('reads .env from the working directory, with the environment winning', async () => {
    const envDir = mkdtempSync(join(dir, 'envfile-'));
    writeFileSync(join(envDir, '.env'), 'LOG_LEVEL=chatty\nMCP_SERVER_PORT=not-a-port\n');
    const r = await run('app/main.ts', { MCP_SERVER_PORT: '0' }, [], envDir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /LOG_LEVEL: expected one of/);
    assert.doesNotMatch(r.stderr, /MCP_SERVER_PORT/);
  });
});

describe('app/token.ts', () => {
  it('prints a token the server accepts', async () => {
    const r = await run('app/token.ts', { JWT_SECRET_KEY: SECRET, JWT_ALGORITHM: 'HS384' }, [
      '--sub',
      'alice',
      '--ttl',
      '120',
      '--scope',
      'read',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const principal = await verifyToken(r.stdout.trim(), { secret: SECRET, algorithm: 'HS384' });
    assert.equal(principal.id, 'alice');
    assert.deepEqual(principal.authInfo?.scopes, ['read']);
    const ttl = (principal.authInfo?.expiresAt ?? 0) - Math.floor(Date.now() / 1000);
    assert.ok(ttl > 100 && ttl <= 120, `ttl ${ttl}`);
  });

  it('sets the configured issuer and audience', async () => {
    const env = { JWT_SECRET_KEY: SECRET, JWT_ISSUER: 'https://idp.example/', JWT_AUDIENCE: 'mcp' };
    const r = await run('app/token.ts', env, ['--sub', 'bob']);
    assert.equal(r.code, 0, r.stderr);
    const settings = { secret: SECRET, algorithm: 'HS256', issuer: env.JWT_ISSUER, audience: 'mcp' } as const;
    assert.equal((await verifyToken(r.stdout.trim(), settings)).id, 'bob');
  });

  it('exits 2 without a secret or a subject', async () => {
    const noSecret = await run('app/token.ts', {}, ['--sub', 'alice']);
    assert.equal(noSecret.code, 2);
    assert.match(noSecret.stderr, /JWT_SECRET_KEY: required/);
    const noSub = await run('app/token.ts', { JWT_SECRET_KEY: SECRET }, []);
    assert.equal(noSub.code, 2);
    assert.match(noSub.stderr, /--sub is required/);
    const badTtl = await run('app/token.ts', { JWT_SECRET_KEY: SECRET }, ['--sub', 'a', '--ttl', 'soon']);
    assert.equal(badTtl.code, 2);
    assert.match(badTtl.stderr, /--ttl/);
  });
});

describe('app/db/seed.ts (npm run db:seed)', () => {
  let server: TestPostgres;
  before(async () => {
    server = await startPostgres();
  });
  after(() => server.stop());

  it('exits 2 without DATABASE_URL', async () => {
    const r = await run('app/db/seed.ts', {});
    assert.equal(r.code, 2);
    assert.match(r.stderr, /DATABASE_URL: required by db:seed/);
  });

  it('creates and fills the employees table, idempotently', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run('app/db/seed.ts', { DATABASE_URL: server.url });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /employees table ready/);
    }
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM employees');
      assert.equal(rows[0]?.n, 20);
    } finally {
      await client.end();
    }
  });

  it('exits 1 with a message when the database is unreachable', async () => {
    const r = await run('app/db/seed.ts', { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /db:seed failed/);
  });
});
