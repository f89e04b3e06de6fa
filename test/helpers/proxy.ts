import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';

/** Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** One request the proxy handled (see {@link Proxy.log}). */
export interface ProxyLogEntry {
  method: string;
  /** Path and query as the client sent it. */
  url: string;
  /** The target that answered, or null when the proxy answered 502 itself. */
  target: string | null;
  status: number;
}

/** A round-robin HTTP reverse proxy in front of some app instances, as a load balancer would be. */
export interface Proxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Responses received per target URL (a target that was tried and failed to connect is not counted). */
  readonly requests: Map<string, number>;
  /** Connect failures (errors before any response byte) per target URL; each one was retried on the next target. */
  readonly failures: Map<string, number>;
  /** Client TCP connections accepted so far (lets a test check that the client really kept alive). */
  readonly connections: number;
  /** The last 1000 requests, oldest first. */
  readonly log: readonly ProxyLogEntry[];
  /** Replaces the targets; rotation restarts at the first one. Requests in flight are not affected. */
  setTargets(urls: string[]): void;
  /** Zeroes `requests`, `failures` and `log`. */
  resetCounters(): void;
  /** Stops listening, drops every client connection and aborts every upstream request. */
  close(): Promise<void>;
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

/** Copies `headers` without the hop-by-hop ones (including those named in `Connection`). */
function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('client went away while sending the body'));
    });
  });
}

/**
 * Starts a reverse proxy on a free port of 127.0.0.1 that sends every request (any method and path, query kept)
 * to the next target in turn: pure round robin per request, even when the client keeps its connection alive
 * (upstream connections are never reused). Request bodies are buffered, so a request whose target refuses or
 * resets the connection before answering is retried on the following target (up to one try per target, then
 * 502); an answer names its target in `x-proxy-target`, and the targets that failed first in `x-proxy-failed`.
 * Response bodies stream through unbuffered (SSE flows event by event). An upstream that dies mid-response
 * makes the proxy drop the client connection; a client that goes away aborts the upstream request.
 */
export async function startProxy(targets: string[]): Promise<Proxy> {
  let list = [...targets];
  let next = 0;
  let connections = 0;
  const requests = new Map<string, number>(list.map((t) => [t, 0]));
  const failures = new Map<string, number>(list.map((t) => [t, 0]));
  const log: ProxyLogEntry[] = [];
  const agent = new Agent({ keepAlive: false });
  const inFlight = new Set<{ destroy(): void }>();

  const record = (e: ProxyLogEntry): void => {
    log.push(e);
    if (log.length > 1000) log.shift();
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });

    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      res.destroy();
      return;
    }

    const headers = endToEnd(req.headers);
    if (body.length > 0 || req.headers['content-length'] !== undefined || req.headers['transfer-encoding']) {
      headers['content-length'] = String(body.length);
    }
    const clientIp = req.socket.remoteAddress ?? '';
    const xff = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = xff ? `${String(xff)}, ${clientIp}` : clientIp;
    headers['x-forwarded-proto'] ??= 'http';
    if (req.headers.host) headers['x-forwarded-host'] ??= req.headers.host;

    const tried = [...list];
    const start = tried.length > 0 ? next++ % tried.length : 0;
    const errors: string[] = [];
    const failed: string[] = [];
    for (let i = 0; i < tried.length; i++) {
      if (ac.signal.aborted) return;
      const target = tried[(start + i) % tried.length]!;
      let upRes: IncomingMessage;
      try {
        upRes = await send(target, method, url, headers, body, ac.signal);
      } catch (err) {
        if (ac.signal.aborted) return;
        bump(failures, target);
        failed.push(target);
        errors.push(`${target}: ${(err as Error).message}`);
        continue;
      }
      bump(requests, target);
      const status = upRes.statusCode ?? 502;
      record({ method, url, target, status });
      const out = endToEnd(upRes.headers);
      out['x-proxy-target'] = target;
      // The targets tried first that failed before answering (the request may have reached them).
      if (failed.length > 0) out['x-proxy-failed'] = failed.join(' ');
      res.writeHead(status, upRes.statusMessage, out);
      res.flushHeaders();
      upRes.once('close', () => {
        // Upstream died mid-response: drop the client connection too, as a real load balancer does.
        if (!upRes.complete) res.destroy();
      });
      pipeline(upRes, res, (err) => {
        if (err) {
          res.destroy();
          upRes.destroy();
        }
      });
      return;
    }

    record({ method, url, target: null, status: 502 });
    const msg = `proxy: no target answered (${tried.length} tried)\n${errors.join('\n')}\n`;
    res.writeHead(502, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(msg) });
    res.end(msg);
  }

  function send(
    target: string,
    method: string,
    url: string,
    headers: OutgoingHttpHeaders,
    body: Buffer,
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const t = new URL(target);
      const base = t.pathname.replace(/\/+$/, '');
      const upReq = httpRequest({
        host: t.hostname,
        port: t.port || 80,
        method,
        path: base + url,
        headers: { ...headers, host: headers.host ?? t.host },
        agent,
        signal,
      });
      inFlight.add(upReq);
      upReq.once('close', () => inFlight.delete(upReq));
      let answered = false;
      upReq.once('response', (r) => {
        answered = true;
        resolve(r);
      });
      // Errors after the response arrived surface on the response stream (handled by pipeline).
      upReq.on('error', (err) => {
        if (!answered) reject(err);
      });
      upReq.end(body);
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      console.error('proxy: unexpected error', err);
      res.destroy();
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    failures,
    get connections() {
      return connections;
    },
    log,
    setTargets(urls: string[]) {
      list = [...urls];
      next = 0;
      for (const u of list) {
        if (!requests.has(u)) requests.set(u, 0);
        if (!failures.has(u)) failures.set(u, 0);
      }
    },
    resetCounters() {
      for (const k of requests.keys()) requests.set(k, 0);
      for (const k of failures.keys()) failures.set(k, 0);
      log.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const r of inFlight) r.destroy();
        agent.destroy();
      });
    },
  };
}
