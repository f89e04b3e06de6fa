// What a user installs, checked as a user gets it: the packed tarball installed in a new project with
// another SDK patch version, the README's example compiled there under strict TypeScript and run (it
// serves a session on Redis, the packaged admin command sees it, SIGTERM ends it); then the reference
// server's production tree (what the Dockerfile ships) built and started. Both use the repository's
// build output, so they run one after the other in this one file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2Transport,
} from '@modelcontextprotocol/client';
import { signToken } from '../../app/auth.js';
import { freePort } from '../helpers/free-port.js';
import { textOf } from '../helpers/mcp-client.js';
import { waitFor } from '../helpers/wait.js';
import { TestRedis } from '../helpers/redis-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The SDK patch version the scratch project installs: another one than the repository's devDependency. */
const SCRATCH_SDK = '1.32.1';
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const WORK = mkdtempSync(join(tmpdir(), 'mcp-fleet-package-'));
process.on('exit', () => rmSync(WORK, { recursive: true, force: true }));

/** Runs npm (on this Node: inside `npm test` the PATH's `node` is the conformance suite's Node 22). */
function npm(args: string[], cwd: string): string {
  const cli = process.env.npm_execpath;
  const r = cli
    ? spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8' })
    : spawnSync('npm', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Every file under `dir`, relative to it (symbolic links not followed). */
function filesUnder(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p, base));
    else if (entry.isFile()) out.push(relative(base, p));
  }
  return out;
}

function duBytes(dir: string): number {
  let total = 0;
  for (const f of filesUnder(dir)) total += statSync(join(dir, f)).size;
  return total;
}

/** A child process whose output is kept, for the assertion messages. */
function start(
  file: string,
  cwd: string,
  env: Record<string, string>,
): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [file], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  process.on('exit', () => child.kill('SIGKILL'));
  return { child, output: () => output };
}

/** Connects an SDK client, retrying while the server is still starting (bounded). */
async function connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new Client({ name: 'package-test', version: '1.0.0' });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
      return client;
    } catch (err) {
      await client.close().catch(() => undefined);
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Resolves with the exit of `child`, failing after `timeoutMs` (the process did not stop). */
function exitOf(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    const timer = setTimeout(
      () => reject(new Error(`still running ${timeoutMs} ms after SIGTERM`)),
      timeoutMs,
    );
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** The TypeScript code block that follows `marker` in the README. */
function readmeBlock(marker: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README has ${marker}`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, `a ts block follows ${marker}`);
  return block[1]!;
}

let packed: string | undefined;
/** The library's tarball, packed once: `npm pack` runs `prepare`, which builds dist/ from a clean slate. */
function tarballOf(): string {
  if (packed === undefined) {
    const out = npm(['pack', '--pack-destination', WORK, '--json'], ROOT);
    const [info] = JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string }>;
    packed = join(WORK, info!.filename);
  }
  return packed;
}

/** Writes `source` as server.ts of a scratch project and compiles it to dist/server.js, strictly. */
function compileStrict(scratch: string, source: string): void {
  writeFileSync(join(scratch, 'server.ts'), source);
  writeFileSync(join(scratch, 'tsconfig.json'), strictTsconfig('server.ts'));
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], {
    cwd: scratch,
    encoding: 'utf8',
  });
  assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}${tsc.stderr}`);
}

/** tsconfig of a scratch project: as strict as a demanding user's (library types checked too). */
function strictTsconfig(file: string): string {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      noEmitOnError: true,
      outDir: 'dist',
      types: ['node'],
    },
    files: [file],
  });
}

describe('the mcp-fleet package, installed from its tarball', () => {
  let redis: TestRedis;
  let tarball: string;
  const scratch = join(WORK, 'scratch');

  before(async () => {
    redis = await TestRedis.start();
    tarball = tarballOf();
    mkdirSync(scratch);
    writeFileSync(
      join(scratch, 'package.json'),
      JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2),
    );
    npm(
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        `@modelcontextprotocol/sdk@${SCRATCH_SDK}`,
        `zod@${pkg.dependencies.zod}`,
        `typescript@${pkg.devDependencies.typescript}`,
        `@types/node@${pkg.devDependencies['@types/node']}`,
      ],
      scratch,
    );
  });
  after(async () => {
    await redis?.stop();
  });

  it('ships the compiled library with types, resolvable source maps, the Lua scripts and the CLI', () => {
    const installed = join(scratch, 'node_modules', 'mcp-fleet');
    const files = filesUnder(installed);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'dist/src/redis/scripts/claim-session.lua',
      'src/index.ts',
    ]) {
      assert.ok(files.includes(f), `${f} in the package`);
    }
    assert.ok(
      !files.some((f) => f.startsWith('test/') || f.startsWith('app/')),
      'no tests, no reference server',
    );
    const maps = files.filter((f) => f.endsWith('.map'));
    assert.ok(maps.length > 50, `${maps.length} source maps`);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[] };
      for (const source of sources) {
        const target = resolve(dirname(join(installed, map)), source);
        assert.ok(existsSync(target), `${map} names ${source}, which is in the package`);
      }
    }
  });

  it("uses the project's SDK (a peer dependency), not a copy of its own", () => {
    const sdk = JSON.parse(
      readFileSync(join(scratch, 'node_modules/@modelcontextprotocol/sdk/package.json'), 'utf8'),
    ) as { version: string };
    assert.equal(sdk.version, SCRATCH_SDK);
    assert.ok(
      !existsSync(join(scratch, 'node_modules/mcp-fleet/node_modules/@modelcontextprotocol')),
      'no nested SDK',
    );
    // Only what src/ imports is installed for the library (the reference server's packages are not).
    for (const name of ['pg', '@electric-sql/pglite', 'pino', 'dotenv']) {
      assert.ok(!existsSync(join(scratch, 'node_modules', name)), `${name} not installed`);
    }
  });

  it('compiles the README example (= examples/quickstart.ts) under strict TypeScript, runs it, ends on SIGTERM', async () => {
    const example = readmeBlock('<!-- example: examples/quickstart.ts -->');
    assert.equal(
      example,
      readFileSync(join(ROOT, 'examples/quickstart.ts'), 'utf8'),
      'README shows the example as it is',
    );
    compileStrict(scratch, example);

    const port = await freePort();
    const server = start('dist/server.js', scratch, { PORT: String(port), REDIS_URL: redis.url });
    let client: Client | undefined;
    try {
      client = await connect(`http://127.0.0.1:${port}/mcp`);
      const answer = textOf(await client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
      assert.match(answer, /^Hello Ada from \S+$/);
      // The packaged admin command sees the session in the example's Redis (default prefix mcp:).
      const cli = spawnSync(
        process.execPath,
        ['node_modules/.bin/mcp-fleet', '--redis', redis.url, 'sessions', 'list', '--json'],
        { cwd: scratch, encoding: 'utf8' },
      );
      assert.equal(cli.status, 0, cli.stderr);
      const listed = JSON.parse(cli.stdout) as { sessions: Array<{ owner: string }> };
      assert.equal(listed.sessions.length, 1);
      assert.equal(answer, `Hello Ada from ${listed.sessions[0]!.owner}`);
      // SIGTERM while the client still holds its GET stream: the process hands off and exits by itself.
      server.child.kill('SIGTERM');
      const exit = await exitOf(server.child, 15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, server.output());
    } finally {
      await client?.close().catch(() => undefined);
      server.child.kill('SIGKILL');
    }
  });
});

describe('the package with the SDK v2 line only (no @modelcontextprotocol/sdk installed)', () => {
  const scratch = join(WORK, 'scratch-v2');

  before(() => {
    mkdirSync(scratch);
    writeFileSync(
      join(scratch, 'package.json'),
      JSON.stringify({ name: 'scratch-v2', private: true, type: 'module' }, null, 2),
    );
    npm(
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarballOf(),
        `@modelcontextprotocol/server@${pkg.devDependencies['@modelcontextprotocol/server']}`,
        `zod@${pkg.dependencies.zod}`,
        `typescript@${pkg.devDependencies.typescript}`,
        `@types/node@${pkg.devDependencies['@types/node']}`,
      ],
      scratch,
    );
  });

  it('compiles examples/quickstart-v2.ts under strict TypeScript, serves both eras, ends on SIGTERM', async () => {
    assert.ok(
      !existsSync(join(scratch, 'node_modules/@modelcontextprotocol/sdk')),
      'the v1 SDK is not installed (both SDK lines are optional peers)',
    );
    compileStrict(scratch, readFileSync(join(ROOT, 'examples/quickstart-v2.ts'), 'utf8'));

    const port = await freePort();
    const server = start('dist/server.js', scratch, { PORT: String(port) });
    const url = `http://127.0.0.1:${port}/mcp`;
    let legacy: Client | undefined;
    let modern: V2Client | undefined;
    try {
      legacy = await connect(url);
      assert.match(
        textOf(await legacy.callTool({ name: 'greet', arguments: { name: 'Ada' } })),
        /^Hello Ada from \S+ \(legacy\)$/,
      );
      modern = new V2Client(
        { name: 'package-test', version: '1.0.0' },
        { versionNegotiation: { mode: 'auto' } },
      );
      await modern.connect(new V2Transport(new URL(url)));
      assert.equal(modern.getNegotiatedProtocolVersion(), '2026-07-28');
      assert.match(
        textOf(await modern.callTool({ name: 'greet', arguments: { name: 'Bo' } })),
        /^Hello Bo from \S+ \(modern\)$/,
      );
      server.child.kill('SIGTERM');
      const exit = await exitOf(server.child, 15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, server.output());
    } finally {
      await legacy?.close().catch(() => undefined);
      await modern?.close().catch(() => undefined);
      server.child.kill('SIGKILL');
    }
  });
});

describe("the reference server's production tree (what the Dockerfile ships)", () => {
  let redis: TestRedis;
  const tree = join(WORK, 'production');

  before(async () => {
    redis = await TestRedis.start();
    const r = spawnSync(process.execPath, ['scripts/production-tree.mjs', tree], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  });
  after(async () => {
    await redis?.stop();
  });

  it('holds production dependencies only: no TypeScript, no tsx, no second Node binary', (t) => {
    const modules = join(tree, 'node_modules');
    for (const dev of [
      'typescript',
      'tsx',
      'esbuild',
      'eslint',
      'prettier',
      'node',
      'pino-pretty',
      '@modelcontextprotocol/conformance',
    ]) {
      assert.ok(!existsSync(join(modules, dev)), `${dev} is not in the production tree`);
    }
    for (const needed of ['mcp-fleet', 'ioredis', 'pg', '@electric-sql/pglite', 'pino', 'jose', 'dotenv']) {
      assert.ok(existsSync(join(modules, needed)), `${needed} is in the production tree`);
    }
    // A Node binary is an ELF file of tens of megabytes: none but the image's own may be there.
    const big = filesUnder(modules).filter((f) => statSync(join(modules, f)).size > 20 * 1024 * 1024);
    assert.deepEqual(big, []);
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /node scripts\/production-tree\.mjs \/out --no-build/, 'the image is this tree');
    assert.equal(dockerfile.match(/^FROM /gm)?.length, 2, 'multi-stage: build, then run');
    assert.match(dockerfile, /^COPY --from=build \/out \.\/$/m);
    assert.match(dockerfile, /^USER 1000:1000$/m, 'runs as the unprivileged node user');
    assert.match(dockerfile, /^HEALTHCHECK /m);
    assert.match(
      dockerfile,
      /^CMD \["node", "--enable-source-maps", "app\/dist\/main\.js"\]$/m,
      'node is PID 1',
    );
    assert.doesNotMatch(
      dockerfile.slice(dockerfile.lastIndexOf('FROM ')),
      /tsx|npm (start|run)/,
      'no tsx or npm at run time',
    );
    t.diagnostic(`production tree: ${(duBytes(tree) / 1024 / 1024).toFixed(1)} MiB`);
  });

  it('starts with node app/dist/main.js in production shape, serves a session, exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const secret = 'production-tree-test-secret-'.padEnd(48, 'x');
    const server = start('app/dist/main.js', tree, {
      ENVIRONMENT: 'production',
      MCP_SERVER_HOST: '127.0.0.1',
      MCP_SERVER_PORT: String(port),
      REDIS_URL: redis.url,
      JWT_SECRET_KEY: secret,
      INSTANCE_ID: 'prod-tree-1',
    });
    let client: Client | undefined;
    try {
      const token = await signToken({ secret, algorithm: 'HS256' }, { sub: 'alice' });
      client = await connect(`http://127.0.0.1:${port}/mcp`, { authorization: `Bearer ${token}` });
      const result = await client.callTool({ name: 'calculator_add', arguments: { a: 2, b: 3 } });
      assert.deepEqual(result.structuredContent, { result: 5 });
      const health = textOf(await client.callTool({ name: 'health_check', arguments: {} }));
      assert.equal((JSON.parse(health) as { server_id: string }).server_id, 'prod-tree-1');
      // Ready once subscribed and listed in the instance registry (its first heartbeat, one round trip
      // after the subscription): the session may have been served just before.
      const readyz = async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
      await waitFor('/readyz 200', async () => (await readyz()) === 200, 10_000);
      assert.equal(await readyz(), 200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^mcp_fleet_owned_sessions 1$/m);
      const cli = spawnSync(process.execPath, ['node_modules/.bin/mcp-fleet', 'stats', '--json'], {
        cwd: tree,
        encoding: 'utf8',
        env: { REDIS_URL: redis.url },
      });
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal((JSON.parse(cli.stdout) as { sessions: number }).sessions, 1);
      server.child.kill('SIGTERM');
      const exit = await exitOf(server.child, 15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, server.output());
      // JSON lines in production, each with the instance id.
      const lines = server.output().trim().split('\n');
      assert.ok(lines.every((l) => (JSON.parse(l) as { instanceId?: string }).instanceId === 'prod-tree-1'));
    } finally {
      await client?.close().catch(() => undefined);
      server.child.kill('SIGKILL');
    }
  });
});
