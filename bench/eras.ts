// Both protocol eras through mcp-fleet, against a baseline measured in the same run:
// - 2026-07-28 (stateless, a server per request): `tools/call echo` through mcp-fleet (embedded, an
//   SDK v2 server) vs the SDK v2's own `createMcpHandler` behind the same Node adapter;
// - 2025 (sessions): warm `tools/call echo` on a session of an SDK v2 server vs the v1 demo server,
//   both through mcp-fleet (embedded).
// Every server runs in its own process.
//
//   npx tsx bench/eras.ts
//
// Env: BENCH_SESSIONS (20), BENCH_REQUESTS (2000), BENCH_CONCURRENCY (20), BENCH_WARMUP (400),
// BENCH_ROUNDS (5), BENCH_MODE (sse | json; default both). Rounds are interleaved; each column is
// the median over rounds.
import { startChild } from './lib/child.js';
import { HttpClient, isEchoResult, openSessions, type Poster } from './lib/client.js';
import {
  KNOBS,
  measureRound,
  medians,
  type Round,
  interleavedRounds,
  printVsBaseline,
  type ChildTarget,
} from './lib/rounds.js';
import { MODES, VARIANT_LABEL, type Mode, type Variant } from './lib/servers.js';
import { ascending, percentile, printEnvironment } from './lib/stats.js';

const { SESSIONS, REQUESTS, CONCURRENCY, WARMUP, ROUNDS } = KNOBS;

const MODERN_HEADERS = {
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'echo',
};

/** A 2026-07-28 `tools/call echo` (the revision envelope in `_meta`, as the v2 client sends it). */
function modernEchoBody(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { text: 'bench' },
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1.0.0' },
      },
    },
  });
}

/** `total` modern echo calls, `CONCURRENCY` in flight; no sessions. */
async function modernRound(client: Poster, total: number, cpu: () => Promise<number>): Promise<Round> {
  const latencies: number[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < total) {
      const id = ++issued;
      const t0 = performance.now();
      const r = await client.post(modernEchoBody(id), MODERN_HEADERS);
      latencies.push(performance.now() - t0);
      if (!isEchoResult(r)) throw new Error(`modern echo failed: ${r.status} ${r.body.slice(0, 300)}`);
    }
  };
  const cpu0 = await cpu();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wallMs = performance.now() - t0;
  const cpu1 = await cpu();
  const sorted = ascending(latencies);
  return {
    rps: (total / wallMs) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuPerReq: (cpu1 - cpu0) / total,
  };
}

interface Target extends ChildTarget {
  variant: Variant;
}

async function bench(mode: Mode, era: 'modern' | 'legacy', variants: [Variant, Variant]): Promise<void> {
  const targets: Target[] = [];
  try {
    for (const variant of variants) {
      const child = await startChild(variant, mode);
      targets.push({
        variant,
        child,
        client: new HttpClient(child.port, CONCURRENCY),
        sessions: [],
        rounds: [],
      });
    }
    const round = (t: Target, total: number) =>
      era === 'modern'
        ? modernRound(t.client, total, () => t.child.cpuMicros())
        : measureRound(t.client, t.sessions, total, () => t.child.cpuMicros());
    for (const t of targets) {
      if (era === 'legacy')
        t.sessions = await openSessions(t.client, SESSIONS, Math.min(SESSIONS, CONCURRENCY));
      await round(t, WARMUP); // JIT, pools, caches
    }
    await interleavedRounds(targets, (t) => round(t, REQUESTS));
  } finally {
    for (const t of targets) t.client.close();
    await Promise.all(targets.map((t) => t.child.stop()));
  }
  const summary = targets.map((t) => ({ label: VARIANT_LABEL[t.variant], ...medians(t.rounds) }));
  const base = summary[0]!;
  console.log(
    `\n## ${era === 'modern' ? '2026-07-28, stateless' : '2025, sessions'} — ${mode === 'json' ? 'JSON responses' : 'SSE responses'}`,
  );
  printVsBaseline(summary, base);
}

printEnvironment(
  'both protocol eras: 2026-07-28 through mcp-fleet vs createMcpHandler; 2025 on a v2 vs a v1 server',
);
console.log(
  `${REQUESTS} requests per round at concurrency ${CONCURRENCY} (${SESSIONS} sessions for 2025), ` +
    `${WARMUP} warm-up requests, median of ${ROUNDS} interleaved rounds`,
);
const started = Date.now();
const modes = process.env.BENCH_MODE ? [process.env.BENCH_MODE as Mode] : MODES;
for (const mode of modes) {
  await bench(mode, 'modern', ['v2-handler', 'fleet-v2']);
  await bench(mode, 'legacy', ['fleet', 'fleet-v2']);
}
console.log(
  `\nThe 2025 table's baseline is mcp-fleet with the v1 demo server: the second row shows what an SDK v2 ` +
    `server costs on the same session engine. Took ${((Date.now() - started) / 1000).toFixed(1)} s.`,
);
