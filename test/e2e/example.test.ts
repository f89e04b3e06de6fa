// The README's quickstart runs as written: two processes on one Redis serve one session; stopping the
// session's owner moves it to the other.
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

  it('a session started on one instance is served by the other, and moves when its owner stops', async () => {
    const [a, b] = instances;
    const first = await connectClient(a!.url);
    const sessionId = first.transport.sessionId!;
    const onA = textOf(await first.client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
    const second = await connectClient(b!.url, { sessionId });
    const viaB = textOf(await second.client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
    assert.match(onA, /^Hello Ada from /);
    // One live copy per session: B hands the request to the session's owner, A.
    assert.equal(viaB, onA, 'B forwarded to the one copy, on A');
    await first.client.close();
    await a!.stop(); // SIGTERM: A hands its sessions off
    const afterStop = textOf(await second.client.callTool({ name: 'greet', arguments: { name: 'Ada' } }));
    assert.match(afterStop, /^Hello Ada from /);
    assert.notEqual(afterStop, onA, 'a new copy on B answers once A is gone');
    await second.transport.terminateSession();
    await second.client.close();
  });
});
