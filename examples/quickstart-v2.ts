// The quickstart on the SDK v2 line: `npm install mcp-fleet @modelcontextprotocol/server zod` (no v1
// SDK). One endpoint serves 2025 clients (initialize + sessions) and 2026-07-28 clients (no sessions).
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { createFleet } from 'mcp-fleet';

const fleet = createFleet({
  server: (ctx) => {
    const server = new McpServer({ name: 'my-v2-server', version: '1.0.0' });
    server.registerTool(
      'greet',
      { description: 'Says hello', inputSchema: z.object({ name: z.string() }) },
      ({ name }) => ({
        content: [{ type: 'text', text: `Hello ${name} from ${ctx.instanceId} (${ctx.era})` }],
      }),
    );
    return server;
  },
  redis: process.env.REDIS_URL, // unset: in memory, one instance
});
const server = http.createServer(fleet.handler);
server.listen(Number(process.env.PORT ?? 9100), '127.0.0.1');

process.on('SIGTERM', () => {
  void fleet.close({ server }).finally(() => process.exit(0));
});
