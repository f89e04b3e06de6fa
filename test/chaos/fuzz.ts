// The request fuzzer: seeded, replayable HTTP requests (valid ones mutated) sent raw over TCP, and
// the judge of each answer. Requests are strings with placeholders, so that a saved one replays on
// another run whose sessions have other ids: {{sid:N}} is fuzz session N (N = 0…), {{legacy}} the
// legacy session, {{host}} the instance's host:port, {{repeat:<char>:<count>}} a long run of one
// character (a 4 MiB body stays a short file).
import { connect, type Socket } from 'node:net';

/** mulberry32: small, fast, good enough to drive mutations; the same seed gives the same requests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Placeholders {
  host: string;
  sids: string[];
  legacy: string;
}

/** Expands a request template into the bytes to send. */
export function expand(template: string, p: Placeholders): Buffer {
  const text = template.replace(
    /\{\{(sid:(\d+)|legacy|host|repeat:(.):(\d+))\}\}/g,
    (_, _all, n, ch, count) => {
      if (n !== undefined) return p.sids[Number(n) % p.sids.length]!;
      if (_all === 'legacy') return p.legacy;
      if (_all === 'host') return p.host;
      // A mutation may have grown the count: at most 8 MiB (twice the default body limit).
      return (ch as string).repeat(Math.min(Number(count), 8 * 1024 * 1024));
    },
  );
  // Content-Length: auto is the byte length of the body as expanded (mutations may replace it).
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) return Buffer.from(text, 'latin1');
  const body = Buffer.from(text.slice(split + 4), 'utf8');
  const head = text.slice(0, split).replace(/Content-Length: auto/i, `Content-Length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body]);
}

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rng, p: number) => r() < p;

const VERSIONS = [
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
  '1999-01-01',
  '',
  'latest',
  '2025-11-25, 2025-06-18',
];
const TOKENS = [
  '',
  'Bearer fuzz',
  'Bearer fuzz',
  'Basic Zm9vOmJhcg==',
  'Bearer ',
  'Bearer {{repeat:z:5000}}',
];
const SIDS = [
  '{{sid:0}}',
  '{{sid:1}}',
  '{{sid:2}}',
  '{{sid:0}}',
  'f'.repeat(32),
  'a b c',
  '{abc}',
  '',
  'x'.repeat(300),
  '%00',
  'ÿÿ',
];
const LAST_EVENT_IDS = [
  '',
  'garbage',
  '0',
  'abc.1',
  'GET.5',
  '{{sid:0}}.1',
  '.'.repeat(50),
  'x'.repeat(2000),
  '%ff%fe',
];

/** Odd JSON values put where a field's value was. */
function oddValue(r: Rng): string {
  const depth = pick(r, [1, 5, 60, 127, 129, 300, 3000]);
  return pick(r, [
    'null',
    'true',
    '0',
    '-1',
    '1e309',
    '-0',
    '9007199254740993',
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '[]',
    '{}',
    '{"__proto__":{"polluted":1}}',
    '"' + 'x'.repeat(pick(r, [10, 10_000, 200_000])) + '"',
    '['.repeat(depth) + ']'.repeat(depth),
    '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
  ]);
}

function message(r: Rng): string {
  const id = pick(r, [
    '1',
    '"a"',
    '2',
    '0',
    '-5',
    '1.5',
    'null',
    '{"x":1}',
    '[1]',
    '"' + 'i'.repeat(500) + '"',
  ]);
  const tool = pick(r, [
    'echo',
    'echo',
    'whoami',
    'increment',
    'progress',
    'slow',
    'nope',
    'ask_llm',
    'request_headers',
  ]);
  const args: Record<string, string> = {
    echo: '{"text":"hi"}',
    whoami: '{}',
    increment: '{"by":1}',
    progress: '{"steps":2}',
    slow: '{"ms":50}',
    nope: '{}',
    ask_llm: '{"question":"q"}',
    request_headers: '{}',
  };
  return pick(r, [
    `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${tool}","arguments":${args[tool]}}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"tools/list"}`,
    `{"jsonrpc":"2.0","id":${id},"method":"ping"}`,
    `{"jsonrpc":"2.0","id":${id},"method":"resources/read","params":{"uri":"demo://greeting"}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"resources/subscribe","params":{"uri":"demo://greeting"}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"logging/setLevel","params":{"level":"debug"}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"prompts/get","params":{"name":"greet","arguments":{"name":"x"}}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"no/such/method"}`,
    `{"jsonrpc":"2.0","id":${id},"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}`,
    `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${id},"reason":"x"}}`,
    `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
    `{"jsonrpc":"2.0","id":${id},"result":{}}`,
    `{"jsonrpc":"2.0","id":${id},"error":{"code":-1,"message":"x"}}`,
    `{"jsonrpc":"1.0","id":${id},"method":"ping"}`,
    `{"id":${id},"method":"ping"}`,
  ]);
}

/** Replaces one JSON value (after a ':' ) by an odd one, or truncates, or flips a byte. */
function mutateBody(r: Rng, body: string): string {
  switch (Math.floor(r() * 7)) {
    case 0: {
      const colons = [...body.matchAll(/:/g)].map((m) => m.index);
      if (colons.length === 0) return body;
      const at = pick(r, colons) + 1;
      const end = body.slice(at).search(/[,}\]]/);
      return body.slice(0, at) + oddValue(r) + (end < 0 ? '' : body.slice(at + end));
    }
    case 1:
      return body.slice(0, Math.floor(r() * body.length));
    case 2: {
      const i = Math.floor(r() * body.length);
      return (
        body.slice(0, i) +
        pick(r, ['"', '{', ']', '\\', '\u0000', 'ÿ', '\ud83d', ',', '']) +
        body.slice(i + 1)
      );
    }
    case 3:
      return `[${Array.from({ length: pick(r, [1, 2, 3, 101]) }, () => message(r)).join(',')}]`;
    case 4:
      return pick(r, [
        '',
        '[]',
        'null',
        '"x"',
        '{}',
        '[[]]',
        '{{repeat:x:4194500}}',
        '{"pad":"{{repeat:x:4194400}}"}',
      ]);
    case 5:
      return `[${body},${body}]`; // the same id twice in one batch
    default:
      return body;
  }
}

interface Shape {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: string;
}

function base(r: Rng): Shape {
  const auth = pick(r, TOKENS);
  const common: Array<[string, string]> = [['Host', '{{host}}']];
  if (auth) common.push(['Authorization', auth]);
  const accept = pick(r, [
    'application/json, text/event-stream',
    'application/json, text/event-stream',
    'text/event-stream',
    'application/json',
    '*/*',
    '',
  ]);
  switch (Math.floor(r() * 8)) {
    case 0:
      return {
        method: 'POST',
        path: '/mcp',
        headers: [...common, ['Content-Type', 'application/json'], ['Accept', accept]],
        body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"${pick(r, VERSIONS)}","capabilities":{"sampling":{},"elicitation":{},"roots":{"listChanged":true}},"clientInfo":{"name":"fuzz","version":"1"}}}`,
      };
    case 1:
    case 2:
    case 3:
      return {
        method: 'POST',
        path: '/mcp',
        headers: [
          ...common,
          [
            'Content-Type',
            pick(r, [
              'application/json',
              'application/json',
              'application/json; charset=utf-8',
              'text/plain',
              'application/json-seq',
            ]),
          ],
          ['Accept', accept],
          ['Mcp-Session-Id', pick(r, SIDS)],
          ['MCP-Protocol-Version', pick(r, VERSIONS)],
        ],
        body: message(r),
      };
    case 4:
      return {
        method: 'GET',
        path: '/mcp',
        headers: [
          ...common,
          ['Accept', pick(r, ['text/event-stream', 'text/event-stream', 'application/json', ''])],
          ['Mcp-Session-Id', pick(r, SIDS)],
          ...(chance(r, 0.6)
            ? ([['Last-Event-ID', pick(r, LAST_EVENT_IDS)]] as Array<[string, string]>)
            : []),
        ],
        body: '',
      };
    case 5:
      return {
        method: 'DELETE',
        path: '/mcp',
        headers: [...common, ['Mcp-Session-Id', pick(r, SIDS.slice(4))]],
        body: '',
      };
    case 6:
      return {
        method: 'POST',
        path: `/messages?sessionId=${pick(r, ['{{legacy}}', '{{legacy}}', 'nope', '', '{{sid:0}}', '%zz', 'a'.repeat(5000)])}`,
        headers: [...common, ['Content-Type', 'application/json']],
        body: message(r),
      };
    default:
      return {
        method: pick(r, ['GET', 'PUT', 'PATCH', 'OPTIONS', 'HEAD', 'DELETE', 'TRACE', 'POST', 'PROPFIND']),
        path: pick(r, [
          '/sse',
          '/messages',
          '/mcp/',
          '/MCP',
          '/mcp?x=1',
          '//mcp',
          '/mcp/../mcp',
          '/%2e%2e',
          '/',
          '*',
          '/messages?sessionId=',
        ]),
        headers: [...common, ['Accept', accept]],
        body: pick(r, ['', message(r), '{{repeat:x:4194500}}']),
      };
  }
}

function mutateHeaders(r: Rng, h: Array<[string, string]>): Array<[string, string]> {
  const out = [...h];
  const i = Math.floor(r() * out.length);
  switch (Math.floor(r() * 6)) {
    case 0:
      out.splice(i, 1);
      break;
    case 1:
      out.push(out[i]!); // duplicated header
      break;
    case 2:
      out[i] = [
        out[i]![0],
        pick(r, ['', ' ', 'a b', '\u00ff\u00fe', 'x'.repeat(9000), '"quoted"', 'a,b', '\t']),
      ];
      break;
    case 3:
      out[i] = [out[i]![0].toUpperCase(), out[i]![1]];
      break;
    case 4:
      out.push([
        pick(r, ['Transfer-Encoding', 'Expect', 'Content-Encoding', 'Connection', 'Upgrade']),
        pick(r, ['chunked', '100-continue', 'gzip', 'upgrade', 'websocket']),
      ]);
      break;
    default:
      break;
  }
  return out;
}

/** One fuzz request (a template: see the file's head). */
export function generate(r: Rng): string {
  const s = base(r);
  let body = s.body;
  let headers = s.headers;
  const mutations = Math.floor(r() * 3);
  for (let m = 0; m < mutations; m++) {
    if (chance(r, 0.6) && body) body = mutateBody(r, body);
    else headers = mutateHeaders(r, headers);
  }
  const chunked = headers.some(([k, v]) => /^transfer-encoding$/i.test(k) && /chunked/i.test(v));
  const lines = [`${s.method} ${s.path} HTTP/1.1`, ...headers.map(([k, v]) => `${k}: ${v}`)];
  if (!chunked && (body || s.method === 'POST')) lines.push('Content-Length: auto');
  lines.push('Connection: close');
  // Chunked: one (possibly malformed) chunk holding the body, then the last chunk.
  const payload = chunked ? `${pick(r, ['', 'zz', '5'])}\r\n${body}\r\n0\r\n\r\n` : body;
  return `${lines.join('\r\n')}\r\n\r\n${payload}`;
}

/** What came back for one request. */
export interface Exchange {
  status?: number;
  head: string;
  body: string;
  /** 'answered': a status line came; otherwise how it ended without one. */
  outcome: 'answered' | 'reset' | 'closed' | 'silent';
}

/**
 * Sends `bytes` on a new connection and reads the answer: a status line and head; then the body to
 * its end, or just the head for an event stream (left open by design).
 */
/**
 * How a slow sender delivers a request: the bytes up to each cut, then a pause (ms) before the next
 * part. `stallAt`: the sender stops there and never sends the rest (the server's timeout must answer).
 */
export interface Delivery {
  cuts: number[];
  pausesMs: number[];
  stallAt?: number;
}

/**
 * A slow sender for a request of `length` bytes: 1-6 random cuts (one in four deliveries also splits
 * the request line byte by byte, across the parser's first states), each followed by a pause of up
 * to 30 ms — far below the server's timeouts, so the answer must be the one the whole request gets.
 */
export function slowDelivery(r: Rng, length: number): Delivery {
  const cuts = new Set<number>();
  if (chance(r, 0.25)) for (let i = 1; i < Math.min(12, length); i++) cuts.add(i);
  const n = 1 + Math.floor(r() * 6);
  for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(r() * Math.max(1, length - 1)));
  const sorted = [...cuts].filter((c) => c < length).sort((a, b) => a - b);
  return { cuts: sorted, pausesMs: sorted.map(() => Math.floor(r() * 30)) };
}

/** Writes `bytes` as `delivery` says, part by part, until the socket is done with. */
function deliver(socket: Socket, bytes: Buffer, delivery: Delivery | undefined): void {
  if (!delivery) {
    // Large bodies: the server may answer (413) before reading them all, then close.
    socket.write(bytes, () => {});
    return;
  }
  const end = delivery.stallAt ?? bytes.length;
  const bounds = [...delivery.cuts.filter((c) => c < end), end];
  let from = 0;
  const step = (i: number) => {
    if (socket.destroyed || !socket.writable || i >= bounds.length) return;
    socket.write(bytes.subarray(from, bounds[i]), () => {});
    from = bounds[i]!;
    const pause = delivery.pausesMs[i] ?? 0;
    if (i + 1 < bounds.length) setTimeout(() => step(i + 1), pause);
  };
  step(0);
}

export function exchange(
  port: number,
  bytes: Buffer,
  timeoutMs: number,
  method = 'GET',
  delivery?: Delivery,
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let settled = false;
    const done = (outcome: Exchange['outcome']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = data.toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      const status = m ? Number(m[1]) : undefined;
      const raw = split < 0 ? '' : text.slice(split + 4);
      resolve({
        status,
        head,
        body: /^transfer-encoding: chunked/im.test(head) ? dechunk(raw) : raw,
        outcome: status !== undefined ? 'answered' : outcome,
      });
    };
    const timer = setTimeout(() => done('silent'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const text = data.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) return;
      const head = text.slice(0, split);
      // No body follows the head of an event stream (kept open), nor of any answer to HEAD.
      if (method === 'HEAD' || /^content-type: text\/event-stream/im.test(head)) return done('answered');
      const length = /^content-length: (\d+)/im.exec(head);
      if (length && data.length - split - 4 >= Number(length[1])) done('answered');
      if (/^transfer-encoding: chunked/im.test(head) && text.endsWith('0\r\n\r\n')) done('answered');
    });
    socket.on('error', () => done('reset'));
    socket.on('close', () => done('closed'));
    deliver(socket, bytes, delivery);
  });
}

/** The payload of a chunked body (as much as arrived). */
function dechunk(raw: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return out;
    const size = Number.parseInt(raw.slice(at, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/**
 * Statuses sent without a body: none. Node's own rejections (unparseable, no Host, headers too
 * large, too slow, an unknown `Expect`) get JSON-RPC bodies from `handleClientErrors`.
 */
const PARSER_STATUSES = new Set<number>();

/** Why `x` breaks the rules, or undefined when it does not. */
export function judge(x: Exchange, method: string): string | undefined {
  if (x.outcome !== 'answered' || x.status === undefined) return `no answer (${x.outcome})`;
  const s = x.status;
  if (s >= 500 && !(s === 503 && /^retry-after:/im.test(x.head))) return `status ${s}`;
  if (s < 400) return undefined;
  if (method === 'HEAD') return undefined; // no body, by definition
  if (x.body === '' && !/^content-length: [1-9]/im.test(x.head)) {
    return PARSER_STATUSES.has(s) ? undefined : `status ${s} without a body`;
  }
  if (!/^content-type: application\/json/im.test(x.head)) return `status ${s} with a non-JSON body`;
  try {
    const e = JSON.parse(x.body) as { jsonrpc?: string; error?: { code?: unknown; message?: unknown } };
    if (e.jsonrpc !== '2.0' || typeof e.error?.code !== 'number' || typeof e.error.message !== 'string')
      return `status ${s} without a JSON-RPC error body`;
  } catch {
    return `status ${s} with a body that is not JSON`;
  }
  return undefined;
}
