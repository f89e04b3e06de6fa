// A minimal HTTP client for the benchmarks: node:http with a keep-alive agent (no fetch/undici, so the
// load generator stays cheap), plus the JSON-RPC bodies of the MCP messages the benchmarks send.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export const PROTOCOL_VERSION = '2025-11-25';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Anything that sends an MCP POST somewhere and answers it (one server, or several in turn). */
export interface Poster {
  post(body: string, headers?: Record<string, string>, path?: string): Promise<HttpResult>;
}

/** Sends each request to the next of several clients: a round-robin load balancer in the client. */
export class RoundRobin implements Poster {
  private next = 0;
  constructor(private readonly clients: readonly Poster[]) {}

  post(body: string, headers: Record<string, string> = {}, path = '/mcp'): Promise<HttpResult> {
    const c = this.clients[this.next++ % this.clients.length]!;
    return c.post(body, headers, path);
  }
}

export class HttpClient implements Poster {
  private readonly agent: http.Agent;

  /** At most `maxSockets` connections to 127.0.0.1:`port`, kept alive between requests. */
  constructor(
    readonly port: number,
    maxSockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  post(body: string, headers: Record<string, string> = {}, path = '/mcp'): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.port,
          path,
          method: 'POST',
          agent: this.agent,
          headers: {
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Closes the kept-alive sockets. */
  close(): void {
    this.agent.destroy();
  }
}

function initializeBody(): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'bench', version: '0' },
    },
  });
}

const INITIALIZED = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

/** `initialize` + `notifications/initialized`, as a real client does; resolves to the session id. */
export async function openSession(client: Poster): Promise<string> {
  const init = await client.post(initializeBody());
  const raw = init.headers['mcp-session-id'];
  const sessionId = Array.isArray(raw) ? raw[0] : raw;
  if (init.status !== 200 || !sessionId) {
    throw new Error(`initialize failed: ${init.status} ${init.body.slice(0, 300)}`);
  }
  const ack = await client.post(INITIALIZED, sessionHeaders(sessionId));
  if (ack.status !== 202) throw new Error(`notifications/initialized failed: ${ack.status} ${ack.body}`);
  return sessionId;
}

/** Opens `count` sessions, `concurrency` at a time. */
export async function openSessions(client: Poster, count: number, concurrency: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      ids.push(await openSession(client));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return ids;
}

export function sessionHeaders(sessionId: string): Record<string, string> {
  return { 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL_VERSION };
}

/** A `tools/call echo` request body. */
export function echoBody(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'bench' } },
  });
}

/** A `tools/call spin` request body: `ms` of CPU work on the instance running the session's copy. */
export function spinBody(id: number, ms: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'spin', arguments: { ms } },
  });
}

/** True when the answer (JSON or SSE) carries the echo result. */
export function isEchoResult(r: HttpResult): boolean {
  return r.status === 200 && r.body.includes('"result"') && r.body.includes('"text":"bench"');
}

/** One `tools/call echo` on a session; resolves to its latency in ms (throws on a wrong answer). */
export async function timedEcho(client: Poster, sessionId: string, id: number): Promise<number> {
  const t0 = performance.now();
  const r = await client.post(echoBody(id), sessionHeaders(sessionId));
  const ms = performance.now() - t0;
  if (!isEchoResult(r)) throw new Error(`echo failed: ${r.status} ${r.body.slice(0, 300)}`);
  return ms;
}

export interface LoadResult {
  wallMs: number;
  /** Per-request latency in ms, in completion order. */
  latencies: number[];
}

/**
 * Sends `total` echo calls with `concurrency` requests in flight; worker i always uses session
 * i mod sessions.length (a session's requests are sequential, like a real client's).
 */
export async function runLoad(
  client: Poster,
  sessions: readonly string[],
  total: number,
  concurrency: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let issued = 0;
  const worker = async (w: number) => {
    const sessionId = sessions[w % sessions.length]!;
    while (issued < total) {
      const id = ++issued;
      latencies.push(await timedEcho(client, sessionId, id));
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return { wallMs: performance.now() - t0, latencies };
}
