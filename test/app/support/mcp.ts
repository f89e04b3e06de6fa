import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/server';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { pino } from 'pino';
import type { SessionContext } from '../../../src/index.js';
import type { AppLogger } from '../../../app/logger.js';
import { MemorySessionData } from './memory-session-data.js';

/** A logger that writes nothing. */
export const silent: AppLogger = pino({ level: 'silent' });

/** A session context like the fleet passes to the factory, with in-memory application data. */
export function sessionContext(data = new MemorySessionData(), sessionId = 'test-session'): SessionContext {
  return {
    era: 'legacy',
    sessionId,
    principal: 'anonymous',
    instanceId: 'test-instance',
    transport: 'streamable-http',
    origin: 'initialize',
    data,
    signal: new AbortController().signal, // these in-process tests never end a session
    onClose: () => {},
  };
}

/** An SDK client connected to `server` over an in-memory transport pair. */
export async function connect(server: McpServer): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  return client;
}

/** Calls a tool and returns its result (never throws for tool errors). */
export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** The text of the first content block of a result. */
export function text(result: CallToolResult): string {
  const first = result.content[0];
  return first?.type === 'text' ? first.text : '';
}
