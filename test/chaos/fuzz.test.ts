// Every input answered: seeded fuzz requests (valid requests of every kind, mutated in method, path,
// headers, body and framing) sent raw over TCP to 2 instances on one Redis, plus the saved corpus of
// every input that once failed. Each must get a status line within 5 s — no reset, no silence — no
// 5xx but a 503 with Retry-After, and a JSON-RPC error body on every error the handler sends (Node's
// own parser errors, 400/413/414/431 without a body, are the documented exception). Afterwards both
// processes live and a session opened before the fuzzing, which the fuzzer cannot name, works on.
//
// Short form here (FUZZ_COUNT, default 1500, seed FUZZ_SEED); `npm run chaos:fuzz` runs 20,000.
// A failing input is printed as a template; FUZZ_SAVE=1 writes it to test/chaos/corpus/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectClient, initBody, rawPost, textOf } from '../helpers/mcp-client.js';
import { startCluster, type Instance } from '../helpers/instances.js';
import { TestRedis } from '../helpers/redis-server.js';
import { exchange, expand, generate, judge, prng, type Placeholders } from './fuzz.js';

const CORPUS = fileURLToPath(new URL('./corpus/', import.meta.url));
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const COUNT = Number(process.env.FUZZ_COUNT ?? 1500);
const ANSWER_MS = 5000;
const PARALLEL = 4;

interface Failure {
  note: string;
  request: string;
}

async function initialized(url: string): Promise<string> {
  const r = await rawPost(url, initBody());
  assert.equal(r.status, 200, r.text);
  const sid = r.headers.get('mcp-session-id')!;
  const n = await rawPost(url, '{"jsonrpc":"2.0","method":"notifications/initialized"}', {
    'mcp-session-id': sid,
  });
  assert.equal(n.status, 202);
  return sid;
}

/** Opens a legacy SSE session (kept open during the run) and resolves to its id. */
async function legacySession(url: string, signal: AbortSignal): Promise<string> {
  const res = await fetch(`${url}/sse`, { headers: { accept: 'text/event-stream' }, signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('legacy stream ended before its endpoint');
    text += new TextDecoder().decode(value);
    const m = /sessionId=([^\s&]+)/.exec(text);
    if (m) return m[1]!;
  }
}

describe('fuzz: every input gets an answer', () => {
  let redis: TestRedis;
  let instances: Instance[];
  const places: Placeholders[] = [];
  const legacyStreams = new AbortController();
  let guard: Awaited<ReturnType<typeof connectClient>>;

  before(async () => {
    redis = await TestRedis.start();
    instances = await startCluster(2, {
      entry: 'test/fixtures/demo-instance.ts',
      env: { REDIS_URL: redis.url, KEY_PREFIX: TestRedis.prefix() },
      name: 'fuzz',
    });
    const sids = [
      await initialized(`${instances[0]!.url}/mcp`),
      await initialized(`${instances[1]!.url}/mcp`),
    ];
    sids.push(await initialized(`${instances[0]!.url}/mcp`));
    const legacy = await legacySession(instances[0]!.url, legacyStreams.signal);
    for (const i of instances) places.push({ host: new URL(i.url).host, sids, legacy });
    // A session of a principal the fuzzer never uses: nothing it sends may touch it.
    guard = await connectClient(instances[1]!.url, { token: 'guard' });
  });

  after(async () => {
    legacyStreams.abort();
    await guard?.client.close().catch(() => {});
    await Promise.all((instances ?? []).map((i) => i.kill()));
    await redis?.stop();
  });

  async function run(cases: Array<{ note: string; request: string }>): Promise<Failure[]> {
    const failures: Failure[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < cases.length) {
          const k = next++;
          const c = cases[k]!;
          const target = k % instances.length;
          const method = c.request.slice(0, c.request.indexOf(' '));
          const x = await exchange(
            instances[target]!.port,
            expand(c.request, places[target]!),
            ANSWER_MS,
            method,
          );
          const why = judge(x, method);
          if (why)
            failures.push({
              note: `${c.note}: ${why} — got ${JSON.stringify(x.head.slice(0, 120))}`,
              request: c.request,
            });
        }
      }),
    );
    return failures;
  }

  function report(failures: Failure[]): void {
    if (failures.length === 0) return;
    const save = process.env.FUZZ_SAVE === '1';
    if (save) mkdirSync(CORPUS, { recursive: true });
    for (const [i, f] of failures.slice(0, 20).entries()) {
      console.log(`# ${f.note}\n#   ${JSON.stringify(f.request.slice(0, 600))}`);
      if (save) writeFileSync(join(CORPUS, `found-${SEED}-${i}.json`), `${JSON.stringify(f, null, 2)}\n`);
    }
  }

  it('the saved corpus: every input that once failed', async () => {
    const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json'));
    assert.ok(files.length > 0, 'the corpus is in the repository');
    const cases = files.map((f) => JSON.parse(readFileSync(join(CORPUS, f), 'utf8')) as Failure);
    const failures = await run(cases);
    report(failures);
    assert.deepEqual(
      failures.map((f) => f.note),
      [],
    );
  });

  it(`${COUNT} generated requests (seed ${SEED})`, async () => {
    const r = prng(SEED);
    const cases = Array.from({ length: COUNT }, (_, k) => ({ note: `#${k}`, request: generate(r) }));
    const started = Date.now();
    const failures = await run(cases);
    console.log(
      `# fuzz: ${COUNT} requests in ${Date.now() - started} ms, ${failures.length} broke the rules`,
    );
    report(failures);
    assert.deepEqual(
      failures.map((f) => f.note),
      [],
    );
  });

  it('leaves both processes up and the untouched session working', async () => {
    for (const i of instances) {
      assert.ok(i.running, `${i.name} still runs`);
      assert.doesNotMatch(i.output(), /uncaught|unhandled/i, `${i.name} reported no crash`);
      const ready = await fetch(`${i.url}/livez`);
      assert.equal(ready.status, 200);
    }
    const r = await guard.client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    assert.equal(textOf(r), 'still here');
    const again = await connectClient(instances[0]!.url, {
      token: 'guard',
      sessionId: guard.transport.sessionId,
    });
    assert.equal(textOf(await again.client.callTool({ name: 'echo', arguments: { text: 'x' } })), 'x');
    await again.transport.close();
  });
});
