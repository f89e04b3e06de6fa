import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';

/** An official SDK client connected over Streamable HTTP (optionally to an existing session). */
export async function connectClient(
  baseUrl: string,
  opts: { token?: string; sessionId?: string; name?: string; capabilities?: ClientCapabilities } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', baseUrl), {
    sessionId: opts.sessionId,
    requestInit: { headers },
  });
  const client = new Client(
    { name: opts.name ?? 'test-client', version: '1.2.3' },
    { capabilities: opts.capabilities ?? {} },
  );
  await client.connect(transport);
  return { client, transport };
}

/** The text of the first content item of a tool result. */
export function textOf(result: unknown): string {
  const r = result as CallToolResult;
  const first = r.content[0];
  if (!first || first.type !== 'text') throw new Error(`no text content in ${JSON.stringify(result)}`);
  return first.text;
}

/** Raw HTTP helper for bad-input tests. */
export async function rawPost(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      ...headers,
    },
    body,
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** An initialize request body. */
export function initBody(id: number | string = 1, protocolVersion = '2025-11-25'): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  });
}
