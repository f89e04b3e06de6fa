// The README's quickstart runs as written: two processes on one Redis serve one session.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Instance } from '../helpers/instances.js';
import { connectClient, textOf } from '../helpers/mcp-client.js';
import { TestRedis } from '../helpers/redis-server.js';

describe('examples/quickstart.ts', () => {
  let redis: TestRedis;
  let instances: Instance[];

  before(async () => {
    redis = await TestRedis.start();
    instances = await startCluster(2, {
      entry: 'examples/quickstart.ts',
      env: { REDIS_URL: redis.url },
      name: 'qs',
    });
  });
  after(async () => {
    await Promise.all((instances ?? []).map((i) => i.stop()));
    await redis?.stop();
  });

  it('a session started on one instance is served by the other', async () => {
    const [a, b] = instances;
    const first = await connectClient(a!.url);
    const sessionId = first.transport.sessionId!;
    const onA = textOf(await first.client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
    const second = await connectClient(b!.url, { sessionId });
    const onB = textOf(await second.client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
    assert.match(onA, /^Hello Ada from /);
    assert.match(onB, /^Hello Ada from /);
    assert.notEqual(onA, onB, 'answered by two different instances');
    await first.transport.terminateSession();
    await Promise.all([first.client.close(), second.client.close()]);
  });
});
