// The servers under test: the SDK's stock transport (baseline) and mcp-fleet, both serving the same
// demo McpServer (test/fixtures/demo-server.ts) on POST/GET/DELETE /mcp.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { createFleet, type Fleet, type FleetOptions, type SessionContext } from '../../src/index.js';
import { buildDemoServer } from '../../test/fixtures/demo-server.js';
import { createMcpHandler, McpServer as V2McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { pipeResponse, toWebRequest } from '../../src/modern/modern-era.js';

/** `json`: `jsonResponse`/`enableJsonResponse` on; `sse`: every answer is an SSE stream (the default). */
export type Mode = 'json' | 'sse';
export const MODES: readonly Mode[] = ['json', 'sse'];

export type Variant = 'baseline' | 'fleet' | 'fleet-redis' | 'v2-handler' | 'fleet-v2' | 'fleet-build';
export const VARIANT_LABEL: Record<Variant, string> = {
  baseline: 'baseline: stock SDK transport',
  fleet: 'mcp-fleet embedded (no Redis)',
  'fleet-redis': 'mcp-fleet + Redis',
  'v2-handler': "baseline: SDK v2's createMcpHandler (2026-07-28 only)",
  'fleet-v2': 'mcp-fleet embedded, SDK v2 server',
  'fleet-build': 'mcp-fleet + Redis, the build in BENCH_LIB',
};

/** The demo server's `echo` on the SDK v2 line (same answer as test/fixtures/demo-server.ts's). */
function buildV2EchoServer(): V2McpServer {
  const server = new V2McpServer({ name: 'bench-v2', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'echo', inputSchema: z.object({ text: z.string() }) },
    ({ text }) => ({
      content: [{ type: 'text', text }],
    }),
  );
  return server;
}

export interface BenchServer {
  port: number;
  /** Sessions held in this process's memory. */
  live(): Promise<number>;
  close(): Promise<void>;
}

/** The demo server's context outside mcp-fleet (the echo tool never reads it). */
export function standaloneContext(sessionId: string): SessionContext {
  const unsupported = () => Promise.reject(new Error('no session data in the baseline'));
  return {
    era: 'legacy',
    sessionId,
    principal: 'anonymous',
    instanceId: 'baseline',
    transport: 'streamable-http',
    origin: 'initialize',
    data: {
      get: unsupported,
      snapshot: unsupported,
      set: unsupported,
      update: unsupported,
      clear: unsupported,
    },
    signal: new AbortController().signal, // the baseline's sessions end with the process
    onClose: () => {},
  };
}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

function jsonRpcError(res: http.ServerResponse, status: number, message: string): void {
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/**
 * The usual single-instance setup of the SDK docs: one StreamableHTTPServerTransport and one McpServer
 * per session, kept in a Map by session id; the body is parsed once and handed to the transport.
 */
function baselineHandler(mode: Mode) {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if ((req.url ?? '/').split('?')[0] !== '/mcp') return jsonRpcError(res, 404, 'Not Found');
    const raw = req.headers['mcp-session-id'];
    const sessionId = Array.isArray(raw) ? raw[0] : raw;
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId) return jsonRpcError(res, 404, 'Session not found');
      if (req.method !== 'POST' || !isInitializeRequest(body)) {
        return jsonRpcError(res, 400, 'Bad Request: No valid session ID provided');
      }
      const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: mode === 'json',
        onsessioninitialized: (id) => {
          transports.set(id, created);
        },
      });
      created.onclose = () => {
        if (created.sessionId) transports.delete(created.sessionId);
      };
      await buildDemoServer(standaloneContext('baseline')).connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res, body);
  };
  return {
    handler: (req: http.IncomingMessage, res: http.ServerResponse) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) jsonRpcError(res, 500, String(err));
        else res.end();
      });
    },
    live: () => Promise.resolve(transports.size),
    close: async () => {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
    },
  };
}

function listen(handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function stopServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** The stock SDK transport on a free port. */
export async function startBaseline(mode: Mode): Promise<BenchServer> {
  const b = baselineHandler(mode);
  const server = await listen(b.handler);
  return {
    port: (server.address() as AddressInfo).port,
    live: b.live,
    close: async () => {
      await b.close();
      await stopServer(server);
    },
  };
}

export interface FleetServerOptions {
  mode: Mode;
  /** Omitted: embedded (in-memory) fleet. */
  redisUrl?: string;
  keyPrefix?: string;
  instanceId?: string;
  /** Default: `BENCH_RESUMABLE=0` in the environment turns it off, else mcp-fleet's default (on). */
  resumable?: boolean;
  /** Default: `BENCH_REBALANCE=<idleMs>` in the environment turns rebalancing on, else off. */
  rebalance?: FleetOptions['rebalance'];
  /** Serve an SDK v2 server (echo only) instead of the v1 demo server. */
  v2?: boolean;
  /** Another build of the library (its `createFleet`) instead of this source tree's (bench/ab.ts). */
  create?: typeof createFleet;
}

/** `BENCH_MAX_LIVE_SESSIONS` in the environment raises `maxLiveSessions` (default 1000). */
const maxLiveSessions = Number(process.env.BENCH_MAX_LIVE_SESSIONS) || undefined;

/** An mcp-fleet instance (defaults otherwise: `resumable: true` unless BENCH_RESUMABLE=0) on a free port. */
export async function startFleet(o: FleetServerOptions): Promise<BenchServer & { fleet: Fleet }> {
  const fleet = (o.create ?? createFleet)({
    server: (ctx) => (o.v2 ? buildV2EchoServer() : buildDemoServer(ctx)),
    redis: parseBenchRedis(o.redisUrl),
    keyPrefix: o.keyPrefix,
    instanceId: o.instanceId,
    maxLiveSessions,
    jsonResponse: o.mode === 'json',
    resumable: o.resumable ?? (process.env.BENCH_RESUMABLE === '0' ? false : undefined),
    rebalance:
      o.rebalance ??
      (process.env.BENCH_REBALANCE
        ? { idleMs: Number(process.env.BENCH_REBALANCE), intervalMs: 500, maxPerSecond: 50 }
        : false),
  });
  const deadline = Date.now() + 10_000;
  while (!(await fleet.ready())) {
    if (Date.now() > deadline) throw new Error('fleet not ready after 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const server = await listen((req, res) => fleet.handler(req, res));
  return {
    fleet,
    port: (server.address() as AddressInfo).port,
    live: async () => (await fleet.health()).liveSessions,
    close: async () => {
      await fleet.close();
      await stopServer(server);
    },
  };
}

/**
 * The `redis` option from a bench URL: `redis://…` as is, `cluster://h:p,h:p` (seed nodes) or
 * `sentinel://<name>@h:p,h:p` (the sentinels and the master's name).
 */
function parseBenchRedis(url: string | undefined): FleetOptions['redis'] {
  if (url === undefined) return undefined;
  const hostPorts = (list: string) =>
    list.split(',').map((hp) => ({
      host: hp.slice(0, hp.lastIndexOf(':')),
      port: Number(hp.slice(hp.lastIndexOf(':') + 1)),
    }));
  if (url.startsWith('cluster://')) return { nodes: hostPorts(url.slice('cluster://'.length)) };
  const sentinel = /^sentinel:\/\/([^@]+)@(.+)$/.exec(url);
  if (sentinel) return { name: sentinel[1]!, sentinels: hostPorts(sentinel[2]!) };
  return url;
}

/**
 * The SDK v2's own stateless handler behind the same Node adapter mcp-fleet uses (body read once,
 * a Fetch Request, the Response streamed back): what a single-instance 2026-07-28 server costs.
 */
async function startV2Handler(mode: Mode): Promise<BenchServer> {
  const handler = createMcpHandler(() => buildV2EchoServer(), {
    legacy: 'reject',
    responseMode: mode === 'json' ? 'json' : 'auto',
  });
  const server = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const aborted = new AbortController();
      res.once('close', () => aborted.abort());
      void handler
        .fetch(toWebRequest(req, body, aborted.signal), { parsedBody: JSON.parse(body.toString('utf8')) })
        .then((r) => pipeResponse(r, res))
        .catch((err: unknown) => jsonRpcError(res, 500, String(err)));
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    live: () => Promise.resolve(0),
    close: async () => {
      await handler.close();
      await stopServer(server);
    },
  };
}

export async function startVariant(
  variant: Variant,
  mode: Mode,
  redis?: { url: string; keyPrefix: string },
): Promise<BenchServer> {
  if (variant === 'baseline') return startBaseline(mode);
  if (variant === 'fleet') return startFleet({ mode });
  if (variant === 'v2-handler') return startV2Handler(mode);
  if (variant === 'fleet-v2') return startFleet({ mode, v2: true });
  if (!redis) throw new Error(`${variant} needs a Redis URL`);
  if (variant === 'fleet-build') {
    const lib = process.env.BENCH_LIB;
    if (!lib) throw new Error('fleet-build needs BENCH_LIB (the index.js of a build of the library)');
    const { createFleet: create } = (await import(lib)) as { createFleet: typeof createFleet };
    return startFleet({ mode, redisUrl: redis.url, keyPrefix: redis.keyPrefix, create });
  }
  return startFleet({
    mode,
    redisUrl: redis.url,
    keyPrefix: redis.keyPrefix,
    instanceId: process.env.BENCH_INSTANCE_ID,
  });
}
