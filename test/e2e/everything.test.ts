// The official, unmodified `@modelcontextprotocol/server-everything` as the user's server: every
// scenario runs on 1 instance (direct) and on 3 instances (separate processes behind the round-robin
// proxy, every request to the next instance), real Redis, the official SDK client. Whatever works on
// one instance must work on three: the "one live copy per session" invariant of DESIGN.md.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { startCluster, type Instance } from '../helpers/instances.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { TestRedis } from '../helpers/redis-server.js';

const ENTRY = 'test/fixtures/everything-instance.ts';
/** Bound of every MCP request the client sends (the SDK default is 60 s). */
const REQUEST = { timeout: 15_000 };
/** Bound of every plain HTTP call (DELETE, the fixture's /test/cleanups). */
const HTTP_TIMEOUT_MS = 15_000;
const ROOT = { uri: 'file:///work/everything', name: 'everything-root' };
/** Tools server-everything registers in `oninitialized`, once it knows the client's capabilities. */
const CONDITIONAL_TOOLS = [
  'get-roots-list',
  'trigger-sampling-request',
  'trigger-elicitation-request',
  'simulate-research-query',
];

/** Polls `fn` until it returns something other than `undefined`/`false`; an error it throws ends the wait. */
async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

/** The text items of a tool result, joined. */
function textOf(result: unknown): string {
  return (result as CallToolResult).content
    .map((c) => (c.type === 'text' ? c.text : ''))
    .filter(Boolean)
    .join('\n');
}

/** One client session with handlers that answer sampling, elicitation and roots and count the requests. */
interface Session {
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  readonly sessionId: string;
  /** Server→client requests the handlers answered. */
  readonly asked: { sampling: number; elicitation: number; roots: number };
  /** `data` of every `notifications/message`, in arrival order. */
  readonly logs: string[];
  /** `uri` of every `notifications/resources/updated`, in arrival order. */
  readonly updates: string[];
  /** The instance that answered each POST, with the JSON-RPC method(s) it carried. */
  readonly served: { method: string; target: string }[];
  call(name: string, args?: Record<string, unknown>): Promise<CallToolResult>;
  /** DELETE (once), then close the client. */
  end(): Promise<void>;
}

async function openSession(url: string): Promise<Session> {
  const served: Session['served'] = [];
  let standaloneOpen = false;
  // Records which instance answered (the proxy says so in x-proxy-target) and bounds every
  // POST/DELETE; the long-lived GET stream is bounded by client.close().
  const fetchBounded: FetchLike = async (input, init) => {
    const method = init?.method ?? 'GET';
    const bounded =
      method === 'GET'
        ? init
        : {
            ...init,
            signal: init?.signal
              ? AbortSignal.any([init.signal, AbortSignal.timeout(HTTP_TIMEOUT_MS)])
              : AbortSignal.timeout(HTTP_TIMEOUT_MS),
          };
    const res = await fetch(input, bounded);
    if (method === 'GET' && res.ok) standaloneOpen = true;
    if (method === 'POST' && typeof init?.body === 'string') {
      const body = JSON.parse(init.body) as { method?: string } | { method?: string }[];
      const methods = (Array.isArray(body) ? body : [body]).map((m) => m.method ?? 'response');
      served.push({ method: methods.join(','), target: res.headers.get('x-proxy-target') ?? url });
    }
    return res;
  };
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', url), { fetch: fetchBounded });
  const client = new Client(
    { name: 'everything-e2e', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  const asked = { sampling: 0, elicitation: 0, roots: 0 };
  const logs: string[] = [];
  const updates: string[] = [];
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    asked.sampling++;
    const first = req.params.messages[0]?.content as { type?: string; text?: string } | undefined;
    return {
      role: 'assistant',
      model: 'test-model',
      content: { type: 'text', text: `answer to ${first?.text ?? ''}` },
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    asked.elicitation++;
    return { action: 'accept', content: { name: 'Ada Lovelace', check: true, email: 'ada@example.com' } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    asked.roots++;
    return { roots: [ROOT] };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (n) => {
    logs.push(typeof n.params.data === 'string' ? n.params.data : JSON.stringify(n.params.data));
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
    updates.push(n.params.uri);
  });
  await client.connect(transport, REQUEST);
  const sessionId = transport.sessionId;
  assert.ok(sessionId, 'initialize returned an Mcp-Session-Id');
  // The SDK opens the GET stream after `initialized`; what the server sends outside any request
  // (logging, resources/updated, roots/list) before it is open is not delivered to this client.
  await until('the GET stream to open', () => standaloneOpen);
  let ended: Promise<void> | undefined;
  const session: Session = {
    client,
    transport,
    sessionId,
    asked,
    logs,
    updates,
    served,
    call: (name, args = {}) =>
      client.callTool({ name, arguments: args }, CallToolResultSchema, REQUEST) as Promise<CallToolResult>,
    end: () =>
      (ended ??= (async () => {
        try {
          if (transport.sessionId) await transport.terminateSession();
        } finally {
          await client.close();
        }
      })()),
  };
  return session;
}

/** Instances that answered the session's POSTs from index `from` on (whose message matched `method`). */
function targetsOf(s: Session, from = 0, method?: RegExp): Set<string> {
  return new Set(
    s.served
      .slice(from)
      .filter((e) => !method || method.test(e.method))
      .map((e) => e.target),
  );
}

describe('server-everything (official, unmodified) on mcp-fleet', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await TestRedis.start();
  });
  after(async () => {
    await redis?.stop();
  });

  for (const topology of ['1 instance', '3 instances'] as const) {
    describe(`server-everything on ${topology}`, () => {
      let instances: Instance[] = [];
      let proxy: Proxy | undefined;
      let url: string;
      const sessions: Session[] = [];

      before(async () => {
        const n = topology === '1 instance' ? 1 : 3;
        instances = await startCluster(n, {
          entry: ENTRY,
          env: { REDIS_URL: redis.url, KEY_PREFIX: TestRedis.prefix() },
          name: n === 1 ? 'everything-solo' : 'everything',
        });
        if (n > 1) proxy = await startProxy(instances.map((i) => i.url));
        url = proxy?.url ?? instances[0]!.url;
      });

      after(async () => {
        // Best effort: a session left open by a failed scenario must not keep the suite waiting.
        await Promise.allSettled(sessions.map((s) => s.end()));
        await proxy?.close();
        await Promise.all(instances.map((i) => i.kill()));
      });

      const open = async () => {
        const s = await openSession(url);
        sessions.push(s);
        return s;
      };

      /** Round robin did spread the scenario over every instance (else it would prove nothing). */
      const assertSpread = (s: Session, from: number, method?: RegExp) =>
        assert.equal(
          targetsOf(s, from, method).size,
          instances.length,
          `requests reached ${[...targetsOf(s, from, method)].join(', ')}`,
        );

      it('tools registered in oninitialized are listed and callable on 6 consecutive calls', async () => {
        const s = await open();
        const from = s.served.length;
        for (let i = 0; i < 6; i++) {
          const names = (await s.client.listTools(undefined, REQUEST)).tools.map((t) => t.name);
          for (const tool of CONDITIONAL_TOOLS) {
            assert.ok(
              names.includes(tool),
              `call ${i + 1}: tools/list lacks ${tool} (has ${names.join(', ')})`,
            );
          }
          const r = await s.call('get-roots-list');
          assert.ok(!r.isError, `call ${i + 1}: get-roots-list failed: ${textOf(r)}`);
        }
        assertSpread(s, from, /^tools\//);
        await s.end();
      });

      it('sampling, elicitation and roots requested from tools reach the client and shape the result', async () => {
        const s = await open();
        const from = s.served.length;
        for (let i = 0; i < 4; i++) {
          const r = await s.call('trigger-sampling-request', { prompt: `p${i}`, maxTokens: 20 });
          assert.match(
            textOf(r),
            new RegExp(`answer to Resource trigger-sampling-request context: p${i}\\b`),
          );
        }
        assert.equal(s.asked.sampling, 4, 'sampling/createMessage requests answered');
        for (let i = 0; i < 4; i++) {
          const r = await s.call('trigger-elicitation-request');
          assert.match(textOf(r), /User provided the requested information/);
          assert.match(textOf(r), /- Name: Ada Lovelace/);
        }
        assert.equal(s.asked.elicitation, 4, 'elicitation/create requests answered');
        for (let i = 0; i < 4; i++) {
          const r = await s.call('get-roots-list');
          assert.match(textOf(r), /Current MCP Roots \(1 total\)/);
          assert.ok(textOf(r).includes(`URI: ${ROOT.uri}`), textOf(r));
        }
        assert.ok(s.asked.roots >= 1, 'roots/list was answered');
        assertSpread(s, from, /^tools\/call$/);
        await s.end();
      });

      it('toggle-simulated-logging: on, then off, one state per session', async () => {
        const s = await open();
        const from = s.served.length;
        const on = textOf(await s.call('toggle-simulated-logging'));
        assert.match(on, /^Started simulated, random-leveled logging/);
        // The timer sends its first message at once: the logging really started.
        await until('the first simulated log message', () =>
          s.logs.some((l) => l.endsWith(`message - SessionId ${s.sessionId}`)),
        );
        const off = textOf(await s.call('toggle-simulated-logging'));
        assert.match(off, /^Stopped simulated logging/, `the second toggle answered: ${off}`);
        // Twice more, so the four toggles cover every instance: the state still alternates.
        const again = textOf(await s.call('toggle-simulated-logging'));
        assert.match(
          again,
          /^Started simulated, random-leveled logging/,
          `the third toggle answered: ${again}`,
        );
        const last = textOf(await s.call('toggle-simulated-logging'));
        assert.match(last, /^Stopped simulated logging/, `the fourth toggle answered: ${last}`);
        const started = [on, off, again, last].filter((a) => a.startsWith('Started')).length;
        assert.equal(started, 2, 'timers started');
        assertSpread(s, from);
        await s.end();
      });

      it('toggle-subscriber-updates: on, then off, one state per session', async () => {
        const s = await open();
        const on = textOf(await s.call('toggle-subscriber-updates'));
        assert.match(on, /^Started simulated resource updated notifications/);
        const off = textOf(await s.call('toggle-subscriber-updates'));
        assert.match(off, /^Stopped simulated resource updates/, `the second toggle answered: ${off}`);
        const started = [on, off].filter((a) => a.startsWith('Started')).length;
        assert.equal(started, 1, 'timers started');
        await s.end();
      });

      it('a task-augmented tool call is found by tasks/get, tasks/result and tasks/list in later requests', async () => {
        const s = await open();
        const created = await s.client.request(
          {
            method: 'tools/call',
            params: { name: 'simulate-research-query', arguments: { topic: 'fleets', ambiguous: false } },
          },
          CreateTaskResultSchema,
          { ...REQUEST, task: { ttl: 120_000 } },
        );
        const taskId = created.task.taskId;
        const from = s.served.length;
        const statuses = new Set<string>();
        await until(
          'the task to complete (tasks/get)',
          async () => {
            const t = await s.client.experimental.tasks.getTask(taskId, REQUEST);
            assert.equal(t.taskId, taskId);
            statuses.add(t.status);
            assert.ok(
              ['working', 'completed'].includes(t.status),
              `task status ${t.status}: ${t.statusMessage}`,
            );
            return t.status === 'completed';
          },
          30_000,
        );
        assert.ok(statuses.has('working'), 'tasks/get saw the task working first');
        for (let i = 0; i < 3; i++) {
          const result = await s.client.experimental.tasks.getTaskResult(
            taskId,
            CallToolResultSchema,
            REQUEST,
          );
          assert.match(textOf(result), /^# Research Report: fleets/);
          const list = await s.client.experimental.tasks.listTasks(undefined, REQUEST);
          assert.ok(
            list.tasks.some((t) => t.taskId === taskId && t.status === 'completed'),
            `tasks/list: ${JSON.stringify(list.tasks)}`,
          );
        }
        assertSpread(s, from, /^tasks\//);
        await s.end();
      });

      it('a resource registered at run time (gzip-file-as-resource) is readable by later requests', async () => {
        const s = await open();
        const name = `fleet-${randomUUID()}.txt.gz`; // module-level registry in server-everything: unique per session
        const text = `${'all instances, one session. '.repeat(40)}${name}`;
        const r = await s.call('gzip-file-as-resource', {
          name,
          data: `data:text/plain;base64,${Buffer.from(text).toString('base64')}`,
          outputType: 'resourceLink',
        });
        const link = r.content[0] as { type: string; uri?: string };
        assert.equal(link.type, 'resource_link', JSON.stringify(r));
        assert.equal(link.uri, `demo://resource/session/${name}`);
        const from = s.served.length;
        for (let i = 0; i < 4; i++) {
          const read = await s.client.readResource({ uri: link.uri }, REQUEST);
          const blob = (read.contents[0] as { blob?: string } | undefined)?.blob;
          assert.ok(blob, `read ${i + 1}: no blob in ${JSON.stringify(read)}`);
          assert.equal(gunzipSync(Buffer.from(blob, 'base64')).toString('utf8'), text);
        }
        assertSpread(s, from);
        await s.end();
      });

      it('one resources/subscribe runs the subscribe handler exactly once', async () => {
        const s = await open();
        const uri = 'demo://resource/dynamic/text/1';
        await s.client.subscribeResource({ uri }, REQUEST);
        // The handler logs "Received Subscribe…" before it returns; turning the updates on makes the same
        // server send notifications/resources/updated for the subscription at once, after that log line
        // on the same (GET) stream: a marker behind which every copy's log line would have arrived.
        await s.call('toggle-subscriber-updates');
        await until(`notifications/resources/updated for ${uri}`, () => s.updates.includes(uri));
        const received = s.logs.filter((l) => l.startsWith('Received Subscribe Resource request'));
        assert.equal(received.length, 1, `subscribe side effects: ${JSON.stringify(received)}`);
        await s.call('toggle-subscriber-updates'); // off again
        await s.end();
      });

      it('hydration side effects: the client gets exactly one roots/list for the session', async () => {
        const s = await open();
        // server-everything's syncRoots runs 350 ms after `initialized`: roots/list, then a log line.
        await until('the roots/list after initialized and its "Roots updated" log', () =>
          s.logs.some((l) => l.startsWith('Roots updated: 1 root(s)')),
        );
        const from = s.served.length;
        // Every instance serves the session at least twice; get-roots-list returns the synced roots (a
        // server that has none yet asks the client before it answers, so every copy shows up here).
        const answers: string[] = [];
        for (let i = 0; i < 6; i++) answers.push(textOf(await s.call('get-roots-list')));
        assertSpread(s, from);
        assert.equal(s.asked.roots, 1, 'roots/list requests the client received');
        for (const a of answers) assert.ok(a.includes(`URI: ${ROOT.uri}`), a);
        await s.end();
      });

      it('the server factory builds one copy of the session in the whole fleet', async () => {
        const s = await open();
        const from = s.served.length;
        for (let i = 0; i < 6; i++)
          assert.equal(textOf(await s.call('echo', { message: `m${i}` })), `Echo: m${i}`);
        assertSpread(s, from);
        const states = await cleanupsOf(s.sessionId);
        const built = states.reduce((n, st) => n + st.built, 0);
        assert.equal(built, 1, `copies built per instance: ${states.map((st) => st.built).join(', ')}`);
        await s.end();
      });

      it('DELETE ends the session: every copy is closed and its cleanup() runs', async () => {
        const s = await open();
        await s.call('toggle-simulated-logging'); // a timer that cleanup() must stop
        for (let i = 0; i < 3; i++) await s.call('echo', { message: `m${i}` });
        await s.transport.terminateSession();
        const states = await until('cleanup() of every copy built for the session', async () => {
          const st = await cleanupsOf(s.sessionId);
          const built = st.reduce((n, x) => n + x.built, 0);
          const cleaned = st.reduce((n, x) => n + x.cleanups.length, 0);
          return built > 0 && cleaned >= built ? st : undefined;
        });
        const reasons = states.flatMap((st) => st.cleanups);
        assert.ok(
          reasons.every((r) => r === 'deleted'),
          `close reasons: ${reasons.join(', ')}`,
        );
        const again = await fetch(`${url}/mcp`, {
          method: 'POST',
          headers: {
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
            'mcp-session-id': s.sessionId,
            'mcp-protocol-version': s.transport.protocolVersion ?? '2025-11-25',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
          signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
        });
        assert.equal(again.status, 404, 'a request after DELETE');
        await s.end();
      });

      /** The fixture's per-process record of the session's copies, one entry per instance. */
      async function cleanupsOf(sessionId: string): Promise<{ built: number; cleanups: string[] }[]> {
        return Promise.all(
          instances.map(async (i) => {
            const res = await fetch(`${i.url}/test/cleanups?sessionId=${encodeURIComponent(sessionId)}`, {
              signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
            });
            assert.equal(res.status, 200);
            return (await res.json()) as { built: number; cleanups: string[] };
          }),
        );
      }
    });
  }
});
