// The README's usage example, runnable: `npx tsx examples/quickstart.ts` (PORT, REDIS_URL optional).
// Start it twice with the same REDIS_URL on two ports and either one serves every session.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { createFleet, type SessionContext } from '../src/index.js'; // from 'mcp-fleet' in your project

function buildMyMcpServer(ctx: SessionContext): McpServer {
  const server = new McpServer({ name: 'quickstart', version: '1.0.0' });
  server.registerTool(
    'greet',
    { description: 'Greets someone, saying which instance answered', inputSchema: { name: z.string() } },
    async ({ name }) => ({ content: [{ type: 'text', text: `Hello ${name} from ${ctx.instanceId}` }] }),
  );
  return server;
}

const fleet = createFleet({
  server: (ctx) => buildMyMcpServer(ctx), // a new, unmodified McpServer per session
  redis: process.env.REDIS_URL, // URL or an ioredis client; omitted → in-memory, one instance
});
const server = http.createServer(fleet.handler).listen(Number(process.env.PORT ?? 9100), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close(); // no new connections; the requests already here finish
  void fleet.close().finally(() => process.exit(0)); // hands this instance's sessions off
});
