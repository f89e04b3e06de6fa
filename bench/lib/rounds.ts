// The measured round of the request benches (warm-request, owner-routing, redis-topology): the knobs
// they share, one round's figures, and the medians over the rounds.
import type { ServerChild } from './child.js';
import { runLoad, type HttpClient, type Poster } from './client.js';
import { ascending, fixed, median, percentile, printTable, ratio } from './stats.js';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);

/** BENCH_SESSIONS, BENCH_REQUESTS (per round), BENCH_CONCURRENCY, BENCH_WARMUP, BENCH_ROUNDS. */
export const KNOBS = {
  SESSIONS: env('BENCH_SESSIONS', 20),
  REQUESTS: env('BENCH_REQUESTS', 2000),
  CONCURRENCY: env('BENCH_CONCURRENCY', 20),
  WARMUP: env('BENCH_WARMUP', 400),
  ROUNDS: env('BENCH_ROUNDS', 5),
};

/** A server process under the load of one bench, its client and sessions, and its rounds so far. */
export interface ChildTarget {
  child: ServerChild;
  client: HttpClient;
  sessions: string[];
  rounds: Round[];
}

/** One round: throughput, latency percentiles (ms) and server CPU per request (µs). */
export interface Round {
  rps: number;
  p50: number;
  p99: number;
  cpuPerReq: number;
}

/** Runs `total` requests on `sessions` through `load`; `cpuMicros` reads the servers' CPU time. */
export async function measureRound(
  load: Poster,
  sessions: string[],
  total: number,
  cpuMicros: () => Promise<number>,
): Promise<Round> {
  const cpu0 = await cpuMicros();
  const r = await runLoad(load, sessions, total, KNOBS.CONCURRENCY);
  const cpu1 = await cpuMicros();
  const sorted = ascending(r.latencies);
  return {
    rps: (total / r.wallMs) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    cpuPerReq: (cpu1 - cpu0) / total,
  };
}

/** The medians of a target's rounds. */
export function medians(rounds: Round[]): { rps: number; p50: number; p99: number; cpu: number } {
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    cpu: median(rounds.map((r) => r.cpuPerReq)),
  };
}

/**
 * `KNOBS.ROUNDS` rounds over `targets`, interleaved (each round starts one target later, so drift in
 * the machine's load spreads over all of them); each round's figures go to the target's `rounds`.
 */
export async function interleavedRounds<T extends { rounds: Round[] }>(
  targets: readonly T[],
  measure: (t: T) => Promise<Round>,
): Promise<void> {
  for (let round = 0; round < KNOBS.ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(round + i) % targets.length]!;
      t.rounds.push(await measure(t));
    }
  }
}

/** A row's first cells: the label and the medians (req/s, p50, p99, server CPU µs per request). */
export function medianCells(s: {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  cpu: number;
}): string[] {
  return [s.label, fixed(s.rps, 0), fixed(s.p50), fixed(s.p99), fixed(s.cpu, 0)];
}

/** The usual table: one row per target (`label` + medians), ratios against `base`. */
export function printVsBaseline(
  summary: ReadonlyArray<{ label: string; rps: number; p50: number; p99: number; cpu: number }>,
  base: { rps: number; cpu: number },
): void {
  printTable(
    ['variant', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'req/s vs baseline', 'CPU/req vs baseline'],
    summary.map((s) => [...medianCells(s), ratio(s.rps, base.rps), ratio(s.cpu, base.cpu)]),
  );
}
