import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { createFleet, type SessionContext } from 'mcp-fleet';

// Your MCP server, unmodified: a new one per session (on initialize, and on each new owner).
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
  server: (ctx) => buildMyMcpServer(ctx),
  redis: process.env.REDIS_URL, // a URL, a Sentinel or Cluster config, or an ioredis client; unset: in memory
});
const server = http.createServer(fleet.handler); // or Express: app.use(fleet.handler)
server.listen(Number(process.env.PORT ?? 9100), '127.0.0.1');

process.on('SIGTERM', () => {
  // Stops accepting connections, hands this instance's sessions off (the next request anywhere makes
  // a new owner), serves what is still arriving on open connections, then exits.
  void fleet.close({ server }).finally(() => process.exit(0));
});
