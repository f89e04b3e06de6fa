// Running the official conformance suite's CLI (server mode) and reading its results: shared by the
// 0.1.16 run on the v1 fixture and the 0.2 run on the v2 fixture.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The server scenarios of the 2025-11-25 revision every run requires: the `--suite active` list of
 * 0.1.16, which 0.2 scores at `--requirements 2025-11-25` as well.
 */
export const SERVER_SCENARIOS_2025 = [
  'server-initialize',
  'logging-set-level',
  'ping',
  'completion-complete',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-mixed-content',
  'tools-call-with-logging',
  'tools-call-error',
  'tools-call-with-progress',
  'tools-call-sampling',
  'tools-call-elicitation',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'elicitation-sep1034-defaults',
  'server-sse-multiple-streams',
  'elicitation-sep1330-enums',
  'resources-list',
  'resources-read-text',
  'resources-read-binary',
  'resources-templates-read',
  'resources-subscribe',
  'resources-unsubscribe',
  'prompts-list',
  'prompts-get-simple',
  'prompts-get-with-args',
  'prompts-get-embedded-resource',
  'prompts-get-with-image',
  'dns-rebinding-protection',
];

/** Checks of server-sse-polling that must succeed (the suite itself fails a run only on FAILURE). */
export const SSE_POLLING_REQUIRED = [
  'server-sse-priming-event',
  'server-sse-retry-field',
  'server-sse-disconnect-resume',
];

/** One check of a scenario, as the suite writes it to `checks.json`. */
export interface Check {
  id: string;
  name: string;
  description?: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';
  errorMessage?: string;
  details?: unknown;
}

export interface SuiteRun {
  code: number | null;
  output: string;
  ms: number;
  /** The scenario that was running when the run was cut after its timeout; undefined if it ended. */
  cutDuring?: string;
  /** After how long the run was (or would have been) cut. */
  timeoutMs: number;
  /** Checks per scenario, read from the `checks.json` files the suite wrote. */
  results: Map<string, Check[]>;
}

/** A Node >= 22 binary (the suite needs `fs.globSync`): CONFORMANCE_NODE, else the `node` npm package's. */
export function node22(installHint: string): string {
  const bin = process.env.CONFORMANCE_NODE ?? join(ROOT, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bin))
    throw new Error(`Node >= 22 for the conformance suite not found at ${bin}: ${installHint}`);
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  const major = Number(/^v(\d+)\./.exec(r.stdout ?? '')?.[1]);
  if (r.status !== 0 || !(major >= 22)) {
    throw new Error(
      `${bin} is not Node >= 22 (got ${r.stdout || r.stderr || r.error?.message}): ${installHint}`,
    );
  }
  return bin;
}

/**
 * Runs `conformance server --url <url> <args…> -o <tmp>` (with `preload` as an `--import`ed module),
 * cut after `timeoutMs`, and collects the checks of every scenario it ran.
 */
export async function runSuite(
  node: string,
  cli: string,
  url: string,
  args: string[],
  timeoutMs: number,
  preload?: string,
): Promise<SuiteRun> {
  const out = mkdtempSync(join(tmpdir(), 'mcp-conformance-'));
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const started = Date.now();
  try {
    const imports = preload ? ['--import', `data:text/javascript,${encodeURIComponent(preload)}`] : [];
    const child = spawn(node, [...imports, cli, 'server', '--url', url, ...args, '-o', out], {
      cwd: out,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    let cut = false;
    const timer = setTimeout(() => {
      cut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const code = await new Promise<number | null>((resolve) => {
      child.once('close', (c) => resolve(c));
      child.once('error', (e) => {
        output += `\nspawn failed: ${e.message}`;
        resolve(null);
      });
    });
    clearTimeout(timer);
    const results = new Map<string, Check[]>();
    for (const dir of readdirSync(out)) {
      // server-<scenario>-<ISO timestamp with ':' and '.' replaced by '-'>
      const m = /^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/.exec(dir);
      const file = join(out, dir, 'checks.json');
      if (m && existsSync(file)) results.set(m[1]!, JSON.parse(readFileSync(file, 'utf8')) as Check[]);
    }
    const running = [
      ...output.matchAll(/=== Running scenario: (\S+) ===|Running client scenario '([^']+)'/g),
    ];
    const last = running.at(-1);
    const cutDuring = cut ? (last?.[1] ?? last?.[2] ?? '(none started)') : undefined;
    return { code, output, ms: Date.now() - started, timeoutMs, results, cutDuring };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The checks of a scenario, one line each (failures and warnings with their details). */
export function describeChecks(checks: Check[]): string {
  return checks
    .map((c) => {
      const err = c.errorMessage ? ` — ${c.errorMessage}` : '';
      const shown = c.status === 'FAILURE' || c.status === 'WARNING';
      const details = shown && c.details ? `\n      ${JSON.stringify(c.details)}` : '';
      return `  [${c.status}] ${c.id}${err}${details}`;
    })
    .join('\n');
}

export const failuresOf = (checks: Check[] | undefined): Check[] =>
  (checks ?? []).filter((c) => c.status === 'FAILURE');

/** Fails unless `scenario` ran, produced checks, and none of them failed. */
export function assertNoFailure(scenario: string, checks: Check[] | undefined, run: SuiteRun): void {
  const cut =
    run.cutDuring === undefined ? '' : ` (run cut after ${run.timeoutMs} ms during ${run.cutDuring})`;
  assert.ok(checks, `scenario ${scenario} produced no results${cut}. Suite output:\n${run.output}`);
  assert.ok(checks.length > 0, `scenario ${scenario} produced no checks`);
  assert.equal(failuresOf(checks).length, 0, `scenario ${scenario} failed:\n${describeChecks(checks)}`);
}
