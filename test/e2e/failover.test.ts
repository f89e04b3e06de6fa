// Failover under load: the owner of several sessions is killed (SIGKILL), frozen (SIGSTOP) or shut
// down (SIGTERM) while 20 SDK clients call tools back to back through the round-robin proxy. Prints
// figures (failover time, errors, hangs) and asserts what a user may see: no hang ever; errors only for
// calls that were in flight on the victim or for its sessions when the fault hit; every session served
// again, by exactly one owner, within the bound; and no failed call at all on a graceful shutdown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { RedisKeys } from '../../src/redis/keys.js';
import { startCluster, type Instance, type InstanceExit } from '../helpers/instances.js';
import { textOf } from '../helpers/mcp-client.js';
import { brokeBeforeAnyEventId, tracedFetch, type TraceEntry } from '../helpers/traced-fetch.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';
import { waitFor as until } from '../helpers/wait.js';

const ENTRY = 'test/fixtures/demo-instance.ts';
const CLIENTS = 20;
/** A call with no answer after this long is a hang (the SDK rejects it with RequestTimeout). */
const HANG_MS = 10_000;
/** Bounds asserted on the failover time (goals: 2 s after SIGKILL, 5 s after SIGSTOP). */
const BOUND_MS = { SIGKILL: 5_000, SIGSTOP: 10_000, SIGTERM: 5_000 } as const;
/** Longest freeze: the victim is woken earlier once its sessions failed over (or wait for it). */
const MAX_FREEZE_MS = 8_000;
/** How long the load goes on once every session works again, and the ok calls each client makes meanwhile. */
const AFTER_MS = 2_500;
const CALLS_AFTER = 8;

type Fault = keyof typeof BOUND_MS;
type Tool = 'echo' | 'slow' | 'whoami';

/** One tool call of the load. Times are ms on the performance clock. */
interface Call {
  session: Session;
  tool: Tool;
  start: number;
  end?: number;
  outcome?: 'ok' | 'error' | 'hang';
  message?: string;
  /** Instance URL that answered the POST (the proxy's `x-proxy-target`); unknown if no head came. */
  target?: string;
  /** Targets the proxy tried first, which failed before answering (the POST may have reached them). */
  failedOn?: string[];
  /** Status and content type of that POST's response. */
  status?: string;
  /** `whoami` only: the instance id running the session's copy. */
  servedBy?: string;
}

/** One SDK client and its session. */
interface Session {
  index: number;
  client: Client;
  transport: StreamableHTTPClientTransport;
  sessionId: string;
  /** Instance id of the owner before the fault (from `whoami`). */
  owner: string;
  calls: Call[];
  current?: Call;
  /** Errors the SDK client reported outside of calls (stream disconnects, reconnect attempts). */
  clientErrors: string[];
  /** The client's recent HTTP exchanges (request, status, SSE event ids, end), printed for a hang. */
  trace: TraceEntry[];
}

/** The pid in a default instance id (`<hostname>-<pid>-<6 random hex>`). */
const pidOf = (instanceId: string) => Number(/-(\d+)-[0-9a-f]{6}$/.exec(instanceId)?.[1]);
const now = () => performance.now();

/** Like {@link until}, but gives up quietly: false when `fn` never became true. */
async function within(fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  return until('', fn, timeoutMs).then(
    () => true,
    () => false,
  );
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : `${Math.round(v)} ms`);

/** An SDK client through the proxy whose fetch notes which instance answered each tool call. */
async function connect(proxyUrl: string, index: number): Promise<Session> {
  const session = { index, calls: [], clientErrors: [], trace: [] } as unknown as Session;
  const traced = tracedFetch(session.trace);
  const noteTarget: FetchLike = async (url, init) => {
    const res = await traced(url, init);
    const call = session.current;
    if (
      call &&
      init?.method === 'POST' &&
      typeof init.body === 'string' &&
      init.body.includes('"tools/call"')
    ) {
      call.target ??= res.headers.get('x-proxy-target') ?? undefined;
      call.failedOn ??= res.headers.get('x-proxy-failed')?.split(' ');
      call.status ??= `${res.status} ${res.headers.get('content-type') ?? '(no content-type)'}`;
    }
    return res;
  };
  session.transport = new StreamableHTTPClientTransport(new URL('/mcp', proxyUrl), {
    fetch: noteTarget,
    requestInit: { headers: { authorization: `Bearer user${index}` } },
  });
  session.client = new Client({ name: `load-${index}`, version: '1.0.0' }, { capabilities: {} });
  session.client.onerror = (e) => session.clientErrors.push(e.message);
  await session.client.connect(session.transport);
  session.sessionId = session.transport.sessionId!;
  session.owner = await whoami(session);
  return session;
}

async function whoami(s: Session): Promise<string> {
  const r = await s.client.callTool({ name: 'whoami', arguments: {} }, undefined, { timeout: HANG_MS });
  const info = JSON.parse(textOf(r)) as { instanceId: string; sessionId: string };
  assert.equal(info.sessionId, s.sessionId);
  return info.instanceId;
}

/** One call of the load: mostly `echo`, some `slow` (200–400 ms), some `whoami`. */
async function callOnce(s: Session, k: number): Promise<Call> {
  // Each client has its own phase, so the fault does not find them all in the same kind of call.
  const j = k + s.index;
  const tool: Tool = j % 6 === 5 ? 'whoami' : j % 7 === 3 ? 'slow' : 'echo';
  const call: Call = { session: s, tool, start: now() };
  s.current = call;
  s.calls.push(call);
  const text = `c${s.index}-${k}`;
  const args =
    tool === 'echo' ? { text } : tool === 'slow' ? { ms: 200 + ((s.index * 37 + k * 53) % 201) } : {};
  try {
    const r = await s.client.callTool({ name: tool, arguments: args }, undefined, { timeout: HANG_MS });
    const out = textOf(r);
    if (r.isError) throw new Error(`tool error: ${out}`);
    if (tool === 'whoami') {
      const info = JSON.parse(out) as { instanceId: string; sessionId: string };
      if (info.sessionId !== s.sessionId) throw new Error(`whoami of another session: ${out}`);
      call.servedBy = info.instanceId;
    } else if (out !== (tool === 'echo' ? text : 'finished')) {
      throw new Error(`wrong answer to ${tool}: ${out}`);
    }
    call.outcome = 'ok';
  } catch (err) {
    const hang = err instanceof McpError && err.code === ErrorCode.RequestTimeout;
    call.outcome = hang ? 'hang' : 'error';
    call.message = err instanceof Error ? err.message : String(err);
  } finally {
    call.end = now();
    s.current = undefined;
  }
  return call;
}

/** What one scenario measured (printed, then asserted). */
interface Figures {
  fault: Fault;
  victim: Instance;
  victimId: string;
  sessions: Session[];
  faultAt: number;
  /** SIGSTOP: when the victim was woken; SIGTERM: when it exited. */
  laterAt?: number;
  /** SIGSTOP: ms from SIGCONT until the woken victim's heartbeat showed it stepped down. */
  stepDownMs?: number;
  exit?: InstanceExit;
  /** Requests the proxy got answered by the victim in the last phase (SIGSTOP: the woken instance). */
  servedByVictimAfter?: number;
}

const inFlightAt = (c: Call, t: number) => c.start <= t && (c.end === undefined || c.end > t);

/** The first successful call of a session that started after `t` (when the session worked again). */
const firstOkAfter = (s: Session, t: number) => s.calls.find((c) => c.start >= t && c.outcome === 'ok');

/** Whether a call's POST reached (or may have reached) the victim: it answered, or failed first. */
const onVictim = (f: Figures, c: Call) =>
  c.target === undefined || c.target === f.victim.url || (c.failedOn ?? []).includes(f.victim.url);

/** A call the fault may break: in flight when it hit, on the victim or for a session it owned. */
function affected(f: Figures, c: Call): boolean {
  return inFlightAt(c, f.faultAt) && (c.session.owner === f.victimId || onVictim(f, c));
}

/** SIGSTOP: the session's call in flight at the fault could only end once the victim was woken. */
function blockedByFreeze(f: Figures, s: Session): boolean {
  const c = s.calls.find((x) => inFlightAt(x, f.faultAt));
  return f.laterAt !== undefined && c !== undefined && (c.end ?? Infinity) >= f.laterAt;
}

function report(f: Figures): void {
  const calls = f.sessions.flatMap((s) => s.calls);
  const ok = calls.filter((c) => c.outcome === 'ok');
  const errors = calls.filter((c) => c.outcome === 'error');
  const hangs = calls.filter((c) => c.outcome === 'hang' || c.outcome === undefined);
  const byMessage = new Map<string, number>();
  for (const c of errors) {
    const m = (c.message ?? '').slice(0, 110);
    byMessage.set(m, (byMessage.get(m) ?? 0) + 1);
  }
  const owned = f.sessions.filter((s) => s.owner === f.victimId);
  const via = (c: Call) =>
    (c.target === undefined ? '(no head)' : c.target === f.victim.url ? 'victim' : 'other') +
    ((c.failedOn ?? []).includes(f.victim.url) ? ' after failing on the victim' : '');
  const times = owned.map((s) => (firstOkAfter(s, f.faultAt)?.end ?? Infinity) - f.faultAt);
  const lines = [
    `── failover ${f.fault}: victim ${f.victim.name} (pid ${f.victim.pid}) owned ${owned.length}/${f.sessions.length} sessions`,
    `   calls ${calls.length}: ok ${ok.length}, errors ${errors.length}, hangs ${hangs.length}; ` +
      `affected (in flight on the victim or for its sessions at the fault) ${calls.filter((c) => affected(f, c)).length}`,
    ...[...byMessage].map(([m, n]) => `   error ×${n}: ${m}`),
    ...errors.map(
      (c) =>
        `     c${c.session.index} ${c.tool} ${ms(c.start - f.faultAt)}…${ms((c.end ?? NaN) - f.faultAt)} ` +
        `via ${via(c)}` +
        ` (${c.status ?? 'no response'})${c.session.owner === f.victimId ? ', victim-owned' : ''}` +
        `${affected(f, c) ? '' : ' NOT AFFECTED'}`,
    ),
    `   failover time per victim-owned session (fault → first ok call started after it): ` +
      `p50 ${ms(percentile(times, 50))}, max ${ms(Math.max(...times))} [${times.map((t) => Math.round(t)).join(', ')}]`,
    `   per victim-owned session: call in flight at the fault → first ok call after it`,
    ...owned.map((s) => {
      const c = s.calls.find((x) => inFlightAt(x, f.faultAt));
      const at = c
        ? `${c.tool} via ${via(c)}: ${c.outcome} at ${ms((c.end ?? NaN) - f.faultAt)}`
        : '(none in flight)';
      return `     c${s.index}: ${at} → ok at ${ms((firstOkAfter(s, f.faultAt)?.end ?? Infinity) - f.faultAt)}`;
    }),
  ];
  const longest = calls.reduce((a, b) =>
    (b.end ?? Infinity) - b.start > (a.end ?? Infinity) - a.start ? b : a,
  );
  lines.push(
    `   longest call: c${longest.session.index} ${longest.tool} ${ms(longest.start - f.faultAt)}…` +
      `${ms((longest.end ?? NaN) - f.faultAt)} via ${via(longest)} (${longest.status ?? 'no response'}): ${longest.outcome}`,
  );
  if (f.fault === 'SIGSTOP') {
    const woke = f.laterAt ?? NaN;
    const blocked = owned.filter((s) => blockedByFreeze(f, s));
    lines.push(
      `   frozen for ${ms(woke - f.faultAt)}; woken instance stepped down ${ms(f.stepDownMs)} after SIGCONT, ` +
        `then answered ${f.servedByVictimAfter ?? 0} requests`,
      `   victim-owned sessions whose client was stuck in a call the frozen process held: ${blocked.length}` +
        (blocked.length === 0
          ? ''
          : ` (served again ${blocked.map((s) => ms((firstOkAfter(s, f.faultAt)?.end ?? Infinity) - woke)).join(', ')} after SIGCONT)`),
    );
  }
  if (f.fault === 'SIGTERM') {
    lines.push(
      `   drained and exited ${ms((f.laterAt ?? NaN) - f.faultAt)} after SIGTERM (${f.exit?.signal ?? `code ${f.exit?.code}`})`,
    );
  }
  // Not failed calls, but what the SDK noticed: stream drops, reconnections, answers for settled ids.
  const clientErrors = new Map<string, string[]>();
  for (const s of f.sessions) {
    for (const m of s.clientErrors) {
      const key = m.replace(/"id":\d+/, '"id":…').slice(0, 170);
      clientErrors.set(key, [...(clientErrors.get(key) ?? []), `c${s.index}`]);
    }
  }
  for (const [m, who] of clientErrors)
    lines.push(`   SDK client onerror ×${who.length} (${who.join(' ')}): ${m}`);
  console.log(lines.join('\n'));
}

/**
 * One scenario on a fresh cluster: 3 instances, the proxy, 20 clients under load; the fault on the
 * instance owning the most sessions; then figures and assertions.
 */
function scenario(fault: Fault): void {
  describe(`owner ${fault} under load from ${CLIENTS} SDK clients`, () => {
    let redis: TestRedis;
    let db: Redis;
    let keys: RedisKeys;
    let instances: Instance[] = [];
    let proxy: Proxy | undefined;
    const sessions: Session[] = [];
    const frozen = new Set<number>();

    before(async () => {
      redis = await TestRedis.start();
      db = redis.client();
      const prefix = TestRedis.prefix();
      keys = new RedisKeys(prefix);
      const env = { REDIS_URL: redis.url, KEY_PREFIX: prefix };
      instances = await startCluster(3, { entry: ENTRY, env, name: `failover-${fault.toLowerCase()}` });
      proxy = await startProxy(instances.map((i) => i.url));
    });

    after(async () => {
      await Promise.allSettled(sessions.map((s) => s.client.close()));
      await proxy?.close();
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGCONT'); // never leave a stopped process behind (it handles no signal but SIGKILL)
        } catch {
          // gone already
        }
      }
      await Promise.all(instances.map((i) => i.kill()));
      db?.disconnect();
      await redis?.stop();
    });

    it(`no hang, errors only where the fault hit, every session served again by one owner`, async () => {
      const p = proxy!;
      sessions.push(...(await Promise.all(Array.from({ length: CLIENTS }, (_, i) => connect(p.url, i)))));
      const byPid = new Map(instances.map((i) => [i.pid, i]));
      for (const s of sessions) assert.ok(byPid.has(pidOf(s.owner)), `owner ${s.owner} is one of ours`);
      const count = (inst: Instance) => sessions.filter((s) => pidOf(s.owner) === inst.pid).length;
      const victim = [...instances].sort((a, b) => count(b) - count(a))[0]!;
      const victimId = sessions.find((s) => pidOf(s.owner) === victim.pid)!.owner;
      const others = instances.filter((i) => i !== victim);
      const owned = sessions.filter((s) => s.owner === victimId);
      assert.ok(owned.length >= 2, `the victim owns ${owned.length} sessions`);

      let stopping = false;
      const loops = sessions.map(async (s) => {
        for (let k = 0; !stopping; k++) await callOnce(s, k);
      });
      const okSince = (s: Session, t: number) => s.calls.filter((c) => c.start >= t && c.outcome === 'ok');
      const f: Figures = { fault, victim, victimId, sessions, faultAt: 0 };
      try {
        await until(
          'warm-up: 3 ok calls per client',
          () => sessions.every((s) => okSince(s, 0).length >= 3),
          15_000,
        );

        f.faultAt = now();
        if (fault === 'SIGKILL') {
          await victim.kill('SIGKILL');
        } else if (fault === 'SIGSTOP') {
          process.kill(victim.pid, 'SIGSTOP');
          frozen.add(victim.pid);
          const beatsBefore = await beatsOf(db, keys, victimId);
          p.setTargets(others.map((i) => i.url)); // the load balancer's probe takes it out of rotation
          // Wake it once each of its sessions failed over — or is stuck behind a call the frozen
          // process holds (no one else can answer that connection) — or after MAX_FREEZE_MS.
          const blocked = (s: Session) => {
            const c = s.current;
            if (!c || c.start > f.faultAt) return false;
            return c.target === victim.url || (c.target === undefined && now() - f.faultAt > 4_000);
          };
          await within(() => owned.every((s) => !!firstOkAfter(s, f.faultAt) || blocked(s)), MAX_FREEZE_MS);
          process.kill(victim.pid, 'SIGCONT');
          frozen.delete(victim.pid);
          f.laterAt = now();
          p.setTargets(instances.map((i) => i.url));
          // Stepped down: its heartbeat runs again and counts only the sessions the store still gives it.
          await until(
            'the woken instance to step down',
            async () => {
              const rec = await instanceRecord(db, keys, victimId);
              if (!rec || rec.beats < beatsBefore + 2) return false;
              const stillOwned = await ownersOf(db, keys, sessions);
              return rec.owned === stillOwned.filter((o) => o === victimId).length;
            },
            5_000,
          );
          f.stepDownMs = now() - f.laterAt;
        } else {
          f.exit = await victim.stop();
          f.laterAt = now();
        }
        await until(
          "every victim-owned session's first ok call after the fault",
          () => owned.every((s) => firstOkAfter(s, f.faultAt)),
          HANG_MS * 2, // an unresumable call (see below) holds its client up to HANG_MS
        );
        // Keep the load on a while (the woken SIGSTOP victim is back in rotation meanwhile).
        const settled = now();
        const servedBefore = p.requests.get(victim.url) ?? 0;
        await until(
          `${AFTER_MS} ms more load with ${CALLS_AFTER} ok calls per client`,
          () =>
            now() - settled >= AFTER_MS && sessions.every((s) => okSince(s, settled).length >= CALLS_AFTER),
          HANG_MS,
        );
        f.servedByVictimAfter = (p.requests.get(victim.url) ?? 0) - servedBefore;
      } finally {
        stopping = true;
        // Each call ends by itself within HANG_MS (the SDK's timeout); what is left then is a hang too.
        if (await within(() => sessions.every((s) => s.current === undefined), HANG_MS + 2_000)) {
          await Promise.all(loops);
        }
        report(f);
      }

      const calls = sessions.flatMap((s) => s.calls);
      const stuck = calls.filter((c) => c.outcome !== 'ok' && c.outcome !== 'error');
      // A call in flight on a killed instance whose POST stream broke before its priming event reached
      // the client cannot be resumed by anyone (see brokeBeforeAnyEventId): counted apart, and only
      // when it was in flight at a SIGKILL. Every other call must end by itself.
      const unresumable = stuck.filter(
        (c) =>
          fault === 'SIGKILL' &&
          c.start <= f.faultAt &&
          brokeBeforeAnyEventId(c.session.trace, c.start, c.end ?? Infinity),
      );
      const hangs = stuck.filter((c) => !unresumable.includes(c));
      if (unresumable.length > 0) {
        console.log(
          `#    unresumable (stream broke before any event id reached the client): ${unresumable.length}`,
        );
      }
      for (const c of stuck) {
        const trace = c.session.trace.filter((t) => t.at >= c.start - 50 && t.at <= (c.end ?? Infinity) + 50);
        console.log(
          [
            `# hung call c${c.session.index} ${c.tool} (session ${c.session.sessionId}), times from the fault:`,
            ...trace.map((t) => `#   ${ms(t.at - f.faultAt)} ${t.text}`),
          ].join('\n'),
        );
      }
      if (stuck.length > 0) for (const i of instances) console.log(`# ── ${i.url}\n${i.output()}`);
      assert.deepEqual(
        hangs.map((c) => `c${c.session.index} ${c.tool} at ${ms(c.start - f.faultAt)}`),
        [],
        'no call may hang',
      );
      // One request, one answer: a request answered as lost is never answered again by an owner that
      // woke up, and a lost request's error is not repeated on resumption.
      assert.deepEqual(
        sessions.flatMap((s) =>
          s.clientErrors
            .filter((m) => /unknown message ID/.test(m))
            .map((m) => `c${s.index}: ${m.slice(0, 160)}`),
        ),
        [],
        'no request gets two answers',
      );
      const failed = calls.filter((c) => c.outcome === 'error');
      if (fault === 'SIGTERM') {
        if (failed.length > 0) for (const i of instances) console.log(`# ── ${i.url}\n${i.output()}`);
        assert.deepEqual(f.exit, { code: 0, signal: null }, 'the victim drained and exited by itself');
        assert.deepEqual(
          failed.map((c) => `c${c.session.index} ${c.tool}: ${c.message}`),
          [],
          'a graceful shutdown fails no call',
        );
      } else {
        assert.deepEqual(
          failed.filter((c) => !affected(f, c)).map((c) => `c${c.session.index} ${c.tool}: ${c.message}`),
          [],
          'errors only for calls in flight on the victim or for its sessions when the fault hit',
        );
      }
      for (const s of owned) {
        // A client stuck in an unresumable call (its own timeout ends it) is measured from then on.
        const stuckUntil = Math.max(
          f.faultAt,
          ...unresumable.filter((c) => c.session === s).map((c) => c.end ?? f.faultAt),
        );
        const t = (firstOkAfter(s, stuckUntil)?.end ?? Infinity) - stuckUntil;
        assert.ok(t <= BOUND_MS[fault], `session c${s.index} served again ${ms(t)} after the fault`);
      }

      // After the fault every session has exactly one owner: several whoami calls (round robin, so
      // through every instance) agree, with each other and with the store's record.
      const storeOwners = await ownersOf(db, keys, sessions);
      for (const [i, s] of sessions.entries()) {
        const seen = new Set<string>();
        for (let k = 0; k < 3; k++) seen.add(await whoami(s));
        assert.equal(seen.size, 1, `session c${s.index} answered by ${[...seen].join(', ')}`);
        assert.equal([...seen][0], storeOwners[i], `session c${s.index}: whoami vs store owner`);
        if (fault !== 'SIGSTOP') assert.notEqual(storeOwners[i], victimId, `c${s.index} still on the victim`);
        // During the load, too: a session of another instance never moved; one of the victim's moved
        // at most once after the fault, away from the victim, and never came back.
        const servedBy = s.calls.flatMap((c) =>
          c.servedBy === undefined ? [] : [{ at: c.start, by: c.servedBy }],
        );
        if (s.owner !== victimId) {
          const moved = servedBy.filter((c) => c.by !== s.owner);
          assert.deepEqual(moved, [], `session c${s.index} moved without cause`);
        } else {
          const after = servedBy.filter((c) => c.at >= f.faultAt).map((c) => c.by);
          const first = after.findIndex((by) => by !== victimId);
          const tail = new Set(first < 0 ? [] : after.slice(first));
          assert.ok(tail.size <= 1, `session c${s.index} was served by ${after.join(', ')} after the fault`);
        }
      }
    });
  });
}

interface InstanceBeat {
  owned: number;
  beats: number;
}

/** The victim's liveness record as its heartbeat wrote it (undefined once expired). */
async function instanceRecord(db: Redis, keys: RedisKeys, id: string): Promise<InstanceBeat | undefined> {
  const raw = await db.get(keys.instance(id));
  return raw === null ? undefined : (JSON.parse(raw) as InstanceBeat);
}

async function beatsOf(db: Redis, keys: RedisKeys, id: string): Promise<number> {
  return (await instanceRecord(db, keys, id))?.beats ?? 0;
}

/** Each session's owner according to its record in the store (the truth). */
async function ownersOf(db: Redis, keys: RedisKeys, sessions: Session[]): Promise<string[]> {
  return Promise.all(
    sessions.map(async (s) => (await db.hget(keys.session(s.sessionId), 'owner')) ?? '(gone)'),
  );
}

scenario('SIGKILL');
scenario('SIGSTOP');
scenario('SIGTERM');
