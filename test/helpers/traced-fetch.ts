// A fetch for SDK clients that notes every exchange — request (with its Last-Event-ID), status, the
// instance that answered (the proxy's x-proxy-target), each SSE event id and how each stream ended —
// so that a test can print what a hung call's client saw.
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

export interface TraceEntry {
  /** performance.now() */
  at: number;
  text: string;
}

/** Wraps `fetch`; entries go to `trace` (the last 15,000–20,000 kept). */
export function tracedFetch(trace: TraceEntry[]): FetchLike {
  return async (url, init) => {
    const method = init?.method ?? 'GET';
    const lastEventId = new Headers(init?.headers).get('last-event-id');
    const body = typeof init?.body === 'string' ? init.body : '';
    const rpc = /"method":"([^"]+)"/.exec(body)?.[1];
    const what = `${method}${rpc ? ` ${rpc}` : ''}${lastEventId ? ` last-event-id ${lastEventId}` : ''}`;
    const note = (text: string, at = performance.now()) => {
      trace.push({ at, text });
      if (trace.length > 20_000) trace.splice(0, 5_000);
    };
    const sent = performance.now();
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (err) {
      note(`${what} → ${(err as Error).message}`, sent);
      throw err;
    }
    note(`${what} → ${res.status} via ${res.headers.get('x-proxy-target') ?? '-'}`, sent);
    if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) return res;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const traced = new ReadableStream<Uint8Array>({
      async pull(c) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            note(`  ${what}: end`);
            c.close();
            return;
          }
          for (const m of decoder.decode(value, { stream: true }).matchAll(/^(id|data): ?(.{0,80})/gm))
            note(`  ${what}: ${m[1]} ${m[2]}`);
          c.enqueue(value);
        } catch (err) {
          note(`  ${what}: ${(err as Error).message}`);
          c.error(err);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(traced, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * Whether the trace shows, between `from` and `to`, a tool call's POST answered `200` whose event
 * stream then broke (an error, not an end) before any event id reached the client. Such a call
 * cannot be resumed by any client: the request's id is known only to the instance that died, and the
 * priming event that would name its stream was lost with the connection (the fetch body stream drops
 * what it had queued when the connection errors). The client's own timeout ends it.
 */
export function brokeBeforeAnyEventId(trace: readonly TraceEntry[], from: number, to: number): boolean {
  // A head's entry carries the time its request was sent: the call's own POST was sent after `from`.
  const window = trace.filter((e) => e.at >= from - 50 && e.at <= to + 50);
  const head = window.findIndex((e) => e.at >= from && /^POST tools\/call → 200\b/.test(e.text));
  if (head < 0) return false;
  for (const e of window.slice(head + 1)) {
    if (!e.text.startsWith('  POST tools/call: ')) continue;
    const what = e.text.slice('  POST tools/call: '.length);
    if (what.startsWith('id ') || what.startsWith('data ') || what === 'end') return false;
    return true; // the stream errored first
  }
  return false;
}
