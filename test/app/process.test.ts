import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signToken } from '../../app/auth.js';
import { startInstance } from '../helpers/instances.js';

const ENTRY = 'test/fixtures/reference-instance.ts';
const SECRET = 'process-test-secret-'.padEnd(48, 'q');

describe('reference server as a process (test/fixtures/reference-instance.ts)', () => {
  it('runs on PORT, logs JSON with instanceId and no secrets in production, exits 0 on SIGTERM', async () => {
    const instance = await startInstance({
      entry: ENTRY,
      name: 'ref-prod',
      env: {
        ENVIRONMENT: 'production',
        SINGLE_INSTANCE: 'true',
        JWT_SECRET_KEY: SECRET,
        INSTANCE_ID: 'proc-1',
        LOG_LEVEL: 'debug',
      },
    });
    let exit;
    try {
      const token = await signToken({ secret: SECRET, algorithm: 'HS256' }, { sub: 'alice' });
      const client = new Client({ name: 'proc-test', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${instance.url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${token}` } },
        }),
      );
      const result = await client.callTool({ name: 'calculator_sqrt', arguments: { x: 81 } });
      assert.deepEqual(result.structuredContent, { result: 9 });
      await client.close();
      const unauthorized = await fetch(`${instance.url}/mcp`, {
        method: 'POST',
        headers: { authorization: 'Bearer not.a.token', 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(unauthorized.status, 401);

      exit = await instance.stop();
      const output = instance.output();
      assert.deepEqual(exit, { code: 0, signal: null }, output);
      assert.ok(!output.includes(SECRET), 'secret in logs');
      assert.ok(!output.includes(token), 'token in logs');
      const lines = output.split('\n').filter((l) => l.trim() !== '');
      assert.ok(lines.length > 0);
      for (const line of lines) {
        const entry = JSON.parse(line) as { instanceId?: string };
        assert.equal(entry.instanceId, 'proc-1', line);
      }
      assert.ok(lines.some((l) => l.includes('shutdown complete')));
    } finally {
      if (exit === undefined) await instance.kill();
    }
  });

  it('warns at start when running without authentication in development', async () => {
    const instance = await startInstance({
      entry: ENTRY,
      name: 'ref-dev',
      env: { ENVIRONMENT: 'development' },
    });
    try {
      const ready = await fetch(`${instance.url}/readyz`);
      assert.equal(ready.status, 200);
    } finally {
      const exit = await instance.stop();
      assert.equal(exit.code, 0, instance.output());
    }
    assert.match(instance.output(), /JWT_SECRET_KEY is not set/);
  });
});
