// The 2026-07-28 era: no sessions, a server per request (SDK v2's `createMcpHandler`), on any
// instance. What must be shared across instances is: the `ServerEventBus` behind
// `subscriptions/listen` (the fleet's, over Redis). The SDK v2 is an optional peer dependency, loaded
// on the first modern request; a fleet whose factory builds v1 servers answers such requests with the
// error that makes a dual-era client fall back to `initialize`.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { McpHttpHandler } from '@modelcontextprotocol/server';
import { FleetError, asError } from '../errors.js';
import { CopyLifecycle } from '../session/copy-lifecycle.js';
import type { JsonValue, Principal, ServerFactory, SessionContext, SessionData } from '../types.js';
import type { FleetEventBus } from './event-bus.js';
import { SUPPORTED_PROTOCOL_VERSIONS } from '../transport/schemas.js';
import { PROTOCOL_VERSION_META_KEY } from './envelope.js';

export interface ModernEraDeps {
  factory: ServerFactory;
  instanceId: string;
  bus: FleetEventBus;
  jsonResponse: boolean;
  maxBodyBytes: number;
  onError(err: Error): void;
}

/** Per request: who asks, and the end of the server built for it. */
interface RequestScope {
  principal: Principal;
  lifecycle: CopyLifecycle;
}

type V2Module = typeof import('@modelcontextprotocol/server');

const NO_SESSION_DATA = (): Promise<never> =>
  Promise.reject(
    new FleetError('INVALID_REQUEST', 'A 2026-07-28 request has no session: there is no session data'),
  );
const noData: SessionData<JsonValue> = {
  get: NO_SESSION_DATA,
  snapshot: NO_SESSION_DATA,
  set: NO_SESSION_DATA,
  update: NO_SESSION_DATA,
  clear: NO_SESSION_DATA,
};

export class ModernEra {
  private loading: Promise<McpHttpHandler | undefined> | undefined;
  private readonly scope = new AsyncLocalStorage<RequestScope>();
  private handler: McpHttpHandler | undefined;

  constructor(private readonly deps: ModernEraDeps) {}

  /**
   * Serves one modern POST whose body was read (`body`) and parsed (`parsed`). Resolves once the
   * response has ended (a `subscriptions/listen` stream: when it closes).
   */
  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    parsed: unknown,
    principal: Principal,
  ): Promise<void> {
    const handler = await this.load(principal);
    if (!handler) {
      const requested = requestedVersion(parsed);
      throw new FleetError('ERA_UNSUPPORTED', `Unsupported protocol version: ${requested ?? '(none)'}`, {
        data:
          requested === undefined
            ? { supported: SUPPORTED_PROTOCOL_VERSIONS }
            : { supported: SUPPORTED_PROTOCOL_VERSIONS, requested },
      });
    }
    const lifecycle = new CopyLifecycle(this.deps.onError);
    const aborted = new AbortController();
    res.once('close', () => aborted.abort());
    try {
      const response = await this.scope.run({ principal, lifecycle }, () =>
        handler.fetch(toWebRequest(req, body, aborted.signal), {
          parsedBody: parsed,
          ...(principal.authInfo ? { authInfo: principal.authInfo as never } : {}),
        }),
      );
      await pipeResponse(response, res);
    } finally {
      lifecycle.end('done');
    }
  }

  /** The principal of the modern request whose handler is running now (from its async context). */
  principalNow(): string | undefined {
    return this.scope.getStore()?.principal.id;
  }

  /** Shutdown: ends the open `subscriptions/listen` streams (their clients listen again elsewhere). */
  async close(): Promise<void> {
    const h = this.handler;
    this.handler = undefined;
    this.loading = undefined;
    await h?.close().catch((e: unknown) => this.deps.onError(asError(e)));
  }

  /**
   * The SDK's handler, built on the first modern request, or undefined when the factory builds v1
   * servers (or the v2 SDK is not installed): told by building one server and looking at its class.
   */
  private load(principal: Principal): Promise<McpHttpHandler | undefined> {
    this.loading ??= (async () => {
      const builds = await loadV2();
      if (builds.length === 0) return undefined; // only the v1 SDK is installed
      const lifecycle = new CopyLifecycle(this.deps.onError);
      const probe = await this.deps.factory(this.contextFor({ principal, lifecycle }));
      // The build (ESM or CommonJS) the user's server comes from: its classes and its handler.
      const v2 = builds.find((m) => probe instanceof m.McpServer || probe instanceof m.Server);
      await (probe as { close(): Promise<void> }).close().catch(() => undefined);
      lifecycle.end('done');
      if (!v2) return undefined;
      this.handler = v2.createMcpHandler(
        async () => {
          const scope = this.scope.getStore();
          if (!scope) throw new Error('modern request outside its scope');
          const server = await this.deps.factory(this.contextFor(scope));
          if (!(server instanceof v2.McpServer || server instanceof v2.Server)) {
            throw new TypeError('the server factory must build SDK v2 servers for 2026-07-28 requests');
          }
          return server;
        },
        {
          legacy: 'reject',
          bus: this.deps.bus,
          responseMode: this.deps.jsonResponse ? 'json' : 'auto',
          maxRequestBodySize: this.deps.maxBodyBytes,
          onerror: (err) => this.deps.onError(err),
        },
      );
      return this.handler;
    })().catch((err: unknown) => {
      this.loading = undefined; // the factory failed: the next modern request tries again
      throw err;
    });
    return this.loading;
  }

  private contextFor(scope: RequestScope): SessionContext<JsonValue> {
    return {
      era: 'modern',
      sessionId: '',
      principal: scope.principal.id,
      instanceId: this.deps.instanceId,
      transport: 'streamable-http',
      origin: 'request',
      data: noData,
      signal: scope.lifecycle.signal,
      onClose: (fn) => scope.lifecycle.onClose(fn),
    };
  }
}

/**
 * The SDK v2 as ES module and as CommonJS (it ships both): a server built with `require()` is an
 * instance of the CommonJS classes only (the dual-package hazard), and must be served by that
 * build's handler. Empty when the v2 SDK is not installed.
 */
async function loadV2(): Promise<V2Module[]> {
  const builds: V2Module[] = [];
  try {
    builds.push(await import('@modelcontextprotocol/server'));
  } catch {
    return builds;
  }
  try {
    const cjs = createRequire(import.meta.url)('@modelcontextprotocol/server') as V2Module;
    if (cjs.McpServer !== builds[0]!.McpServer) builds.push(cjs);
  } catch {
    // no CommonJS build resolvable from here: ES module servers only
  }
  return builds;
}

function requestedVersion(parsed: unknown): string | undefined {
  const first = Array.isArray(parsed) ? (parsed[0] as unknown) : parsed;
  const meta = (first as { params?: { _meta?: Record<string, unknown> } } | undefined)?.params?._meta;
  const v = meta?.[PROTOCOL_VERSION_META_KEY];
  return typeof v === 'string' ? v.slice(0, 64) : undefined;
}

/** The Fetch API request the SDK's handler takes, for a Node request whose body was read already. */
export function toWebRequest(req: IncomingMessage, body: Buffer, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    try {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else headers.set(name, value);
    } catch {
      // A value the Fetch API refuses (Node let it through): the SDK does not need it.
    }
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
  } catch {
    url = new URL(req.url?.startsWith('/') ? req.url : '/', 'http://localhost');
  }
  return new Request(url, { method: req.method ?? 'POST', headers, body, signal });
}

/** Writes a Fetch API response to a Node response, streaming its body (SSE event by event). */
export async function pipeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const cancel = () => void reader.cancel().catch(() => undefined);
  res.once('close', cancel);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) return;
      if (!res.write(value)) await writable(res);
    }
    res.end();
  } catch {
    res.destroy(); // the SDK's stream failed mid-way: the client sees the connection end
  } finally {
    res.off('close', cancel);
  }
}

/** Resolves once `res` drained or closed (a long `subscriptions/listen` stream keeps no listener). */
function writable(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
