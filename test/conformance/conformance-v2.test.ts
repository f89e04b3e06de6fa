// The official MCP conformance suite 0.2.x (@modelcontextprotocol/conformance, server mode) against an SDK v2
// server (`@modelcontextprotocol/server`, test/fixtures/conformance-v2-server.ts) on 3 mcp-fleet instances
// (separate processes, real Redis) behind the round-robin proxy that sends every request to the next
// instance — at the two requirement levels the suite defines: `--requirements 2026-07-28` (no session: a
// server per request on any instance, requestState sealed by the fleet's shared key ring, list_changed over
// the fleet's bus) and `--requirements 2025-11-25` (sessions, one live copy each, reached from any instance).
//
// Every scored scenario of each level must pass, and so must the unscored ones this server passes (pending
// upstream, or added after the level's anchor release). The tasks extension (SEP-2663, unscored at
// 2026-07-28) is run and reported but not required: mcp-fleet does not serve it to SDK v2 servers yet.
//
// The suite needs Node >= 22 (fs.globSync): it runs on the Node 22 binary of the `node` npm package
// (devDependency), the rest of the tests on the Node that runs them. The 0.2 line is a prerelease installed
// under an alias next to 0.1.x (test/conformance/conformance.test.ts): devDependency
// "conformance-next": "npm:@modelcontextprotocol/conformance@0.2.0-alpha.12". Overrides for local
// experiments: CONFORMANCE_NODE (a Node >= 22 binary), CONFORMANCE2_CLI (the suite's dist/index.js).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import {
  assertNoFailure,
  describeChecks,
  failuresOf,
  node22,
  ROOT,
  runSuite,
  SERVER_SCENARIOS_2025,
  SSE_POLLING_REQUIRED,
  type Check,
  type SuiteRun,
} from './runner.js';

const ENTRY = 'test/fixtures/conformance-v2-instance.ts';
const SUITE_VERSION = '0.2.0-alpha.12';
const DEFAULT_CLI = 'node_modules/conformance-next/dist/index.js';
const INSTALL_HINT =
  `add the devDependency "conformance-next": "npm:@modelcontextprotocol/conformance@${SUITE_VERSION}" ` +
  '(and "node": "22.23.3") and run npm install, or point CONFORMANCE2_CLI at the dist/index.js of ' +
  `@modelcontextprotocol/conformance@${SUITE_VERSION} (e.g. npm install it in /tmp/conf-alpha)`;

interface Level {
  revision: '2026-07-28' | '2025-11-25';
  /** The level's `server:` list (requirements/<revision>.yaml of the suite): must pass. */
  scored: string[];
  /** Run by the level but not scored, that this server passes: required here as well. */
  unscoredRequired: string[];
  /** Run by the level, not scored, not required: reported only. */
  reported: string[];
}

const LEVELS: Level[] = [
  {
    revision: '2026-07-28',
    scored: [
      'server-stateless',
      'completion-complete',
      'tools-list',
      'tools-call-simple-text',
      'tools-call-image',
      'tools-call-audio',
      'tools-call-embedded-resource',
      'tools-call-mixed-content',
      'tools-call-error',
      'tools-call-with-progress',
      'server-sse-multiple-streams',
      'resources-list',
      'resources-read-text',
      'resources-read-binary',
      'resources-templates-read',
      'sep-2164-resource-not-found',
      'prompts-list',
      'prompts-get-simple',
      'prompts-get-with-args',
      'prompts-get-embedded-resource',
      'prompts-get-with-image',
      'dns-rebinding-protection',
      'caching',
      'input-required-result-basic-elicitation',
      'input-required-result-basic-sampling',
      'input-required-result-basic-list-roots',
      'input-required-result-request-state',
      'input-required-result-multiple-input-requests',
      'input-required-result-multi-round',
      'input-required-result-missing-input-response',
      'input-required-result-non-tool-request',
      'input-required-result-result-type',
      'input-required-result-unsupported-methods',
      'input-required-result-tampered-state',
      'input-required-result-capability-check',
      'input-required-result-ignore-extra-params',
      'input-required-result-validate-input',
    ],
    // Pending upstream (the suite's own reference fixture cannot pass them yet).
    unscoredRequired: [
      'json-schema-2020-12',
      'http-header-validation',
      'http-custom-header-server-validation',
    ],
    // The tasks extension (SEP-2663).
    reported: [
      'tasks-lifecycle',
      'tasks-capability-negotiation',
      'tasks-wire-fields',
      'tasks-request-state-removal',
      'tasks-mrtr-input',
      'tasks-request-headers',
      'tasks-dispatch-and-envelope',
      'tasks-status-notifications',
      'tasks-required-task-error',
      'tasks-mrtr-composition',
    ],
  },
  {
    revision: '2025-11-25',
    scored: SERVER_SCENARIOS_2025,
    // Added after the anchor release (server-session-lifecycle) or pending upstream (the other two).
    unscoredRequired: ['server-session-lifecycle', 'json-schema-2020-12', 'server-sse-polling'],
    reported: [],
  },
];

/** A run is cut after this (a scenario waiting for an answer that never comes would take the SDK's 60 s). */
const RUN_TIMEOUT_MS = 45_000;

/** The suite's CLI: CONFORMANCE2_CLI, else the aliased devDependency; it must be the pinned version. */
function suiteCli(): string {
  const given = process.env.CONFORMANCE2_CLI ?? DEFAULT_CLI;
  const cli = isAbsolute(given) ? given : join(ROOT, given);
  if (!existsSync(cli)) {
    throw new Error(
      `@modelcontextprotocol/conformance ${SUITE_VERSION} not found at ${cli}: ${INSTALL_HINT}`,
    );
  }
  const pkgPath = join(dirname(dirname(cli)), 'package.json');
  const pkg = existsSync(pkgPath)
    ? (JSON.parse(readFileSync(pkgPath, 'utf8')) as { name?: string; version?: string })
    : {};
  assert.equal(
    `${pkg.name}@${pkg.version}`,
    `@modelcontextprotocol/conformance@${SUITE_VERSION}`,
    `${cli} is not the pinned suite: ${INSTALL_HINT}`,
  );
  return cli;
}

/** One line per scenario: passed/failed check counts, warnings named; failures of the reported ones. */
function summarize(level: Level, run: SuiteRun): string {
  const lines: string[] = [];
  let passed = 0;
  let failed = 0;
  for (const [scenario, checks] of run.results) {
    const ok = checks.filter((c) => c.status === 'SUCCESS').length;
    const bad = failuresOf(checks);
    const warned = checks.filter((c) => c.status === 'WARNING').map((c) => c.id);
    if (bad.length > 0) failed++;
    else passed++;
    const tag = level.scored.includes(scenario)
      ? ''
      : level.reported.includes(scenario)
        ? ' (reported)'
        : ' (unscored)';
    const warn = warned.length > 0 ? `, warnings: ${warned.join(', ')}` : '';
    lines.push(
      `  ${bad.length > 0 ? '✗' : '✓'} ${scenario}${tag}: ${ok} passed, ${bad.length} failed${warn}`,
    );
    // The failures of scenarios that are not required (a required one fails the test with its details).
    if (level.reported.includes(scenario)) {
      for (const c of bad) lines.push(`      ${c.id}: ${(c.errorMessage ?? '').slice(0, 200)}`);
    }
  }
  return `conformance ${SUITE_VERSION} --requirements ${level.revision}: ${passed} scenarios passed, ${failed} failed (${run.ms} ms)\n${lines.join('\n')}`;
}

describe(`MCP conformance suite ${SUITE_VERSION} (server mode) against an SDK v2 server on 3 instances`, () => {
  let redis: TestRedis | undefined;
  let instances: Instance[] = [];
  let proxy: Proxy | undefined;
  let node: string;
  let cli: string;
  let url: string;
  const report: string[] = [];

  before(async () => {
    const t0 = Date.now();
    node = node22('add the devDependency "node": "22.23.3" and run npm install, or set CONFORMANCE_NODE');
    cli = suiteCli();
    redis = await TestRedis.start();
    // The proxy first: its address is the Host/Origin the instances must accept (dns-rebinding-protection).
    proxy = await startProxy([]);
    const hosts = [`127.0.0.1:${proxy.port}`, `localhost:${proxy.port}`];
    instances = await startCluster(3, {
      entry: ENTRY,
      name: 'conformance-v2',
      env: {
        REDIS_URL: redis.url,
        KEY_PREFIX: TestRedis.prefix(),
        REQUEST_STATE_KEY: randomBytes(32).toString('base64url'),
        ALLOWED_HOSTS: hosts.join(','),
        ALLOWED_ORIGINS: hosts.map((h) => `http://${h}`).join(','),
      },
    });
    proxy.setTargets(instances.map((i) => i.url));
    url = `${proxy.url}/mcp`;
    report.push(`setup ${Date.now() - t0} ms`);
  });

  after(async () => {
    if (report.length > 0) console.log(report.join('\n'));
    await proxy?.close();
    await Promise.all(instances.map((i) => i.kill()));
    await redis?.stop();
  });

  const withOutput = async (fn: () => void | Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      const logs = instances.map((i) => `--- ${i.name} ---\n${i.output()}`).join('\n');
      (err as Error).message += `\nInstance output:\n${logs}`;
      throw err;
    }
  };

  for (const level of LEVELS) {
    it(`--requirements ${level.revision}: every required scenario passes`, async (t) => {
      proxy!.resetCounters();
      const run = await runSuite(node, cli, url, ['--requirements', level.revision], RUN_TIMEOUT_MS);
      report.push(summarize(level, run));
      const required = [...level.scored, ...level.unscoredRequired];
      for (const scenario of required) {
        await t.test(scenario, () =>
          withOutput(() => assertNoFailure(scenario, run.results.get(scenario), run)),
        );
      }
      const ssePolling = run.results.get('server-sse-polling');
      if (level.unscoredRequired.includes('server-sse-polling') && ssePolling) {
        await t.test('server-sse-polling exercises SEP-1699 (primed, closed mid-call, resumed)', () => {
          for (const id of SSE_POLLING_REQUIRED) {
            const c: Check | undefined = ssePolling.find((x) => x.id === id);
            assert.equal(c?.status, 'SUCCESS', `check ${id} did not succeed:\n${describeChecks(ssePolling)}`);
          }
        });
      }
      // The suite runs exactly the level's scenarios (a new suite version would change them).
      assert.deepEqual(
        [...run.results.keys()].sort(),
        [...required, ...level.reported].sort(),
        `the suite ran other scenarios than expected. Suite output:\n${run.output}`,
      );
      // Round robin: every instance served part of the run.
      for (const i of instances) {
        assert.ok((proxy!.requests.get(i.url) ?? 0) > 0, `${i.name} served no request of the run`);
      }
      // The suite's own verdict on the scored scenarios.
      assert.equal(run.code, 0, `the suite exited with ${run.code}. Suite output:\n${run.output}`);
    });
  }
});
