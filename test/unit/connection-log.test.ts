import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { FleetError } from '../../src/errors.js';
import { describeRedis, isOutageError, logRedisOutages } from '../../src/redis/connection-log.js';
import { recordingLogger, type Line } from '../helpers/recording-logger.js';

describe('describeRedis', () => {
  it('names where a client connects, never its credentials', () => {
    const plain = new Redis('redis://user:secret@cache.internal:6380/2', { lazyConnect: true });
    assert.equal(describeRedis(plain), 'redis://cache.internal:6380/2');
    const tls = new Redis('rediss://mcp:secret@master.example.cache.amazonaws.com:6379', {
      lazyConnect: true,
    });
    assert.equal(describeRedis(tls), 'rediss://master.example.cache.amazonaws.com:6379/0');
    const socket = new Redis({ path: '/run/redis.sock', lazyConnect: true });
    assert.equal(describeRedis(socket), 'unix:/run/redis.sock');
    const sentinel = new Redis({
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2' }],
      name: 'primary',
      lazyConnect: true,
    });
    assert.equal(describeRedis(sentinel), 'sentinel s1:26379,s2:26379 (master primary)');
    for (const c of [plain, tls, socket, sentinel]) c.disconnect();
  });
});

describe('isOutageError', () => {
  it('recognises an unreachable or slow store through the cause chain, and nothing else', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    assert.ok(isOutageError(refused));
    assert.ok(isOutageError(new FleetError('STORE_UNAVAILABLE', 'Session store unavailable')));
    assert.ok(isOutageError(new Error('instance heartbeat failed', { cause: refused })));
    assert.ok(isOutageError(new Error('Connection is closed.')));
    assert.ok(!isOutageError(new Error('malformed bus message (x): invalid')));
    assert.ok(!isOutageError(new FleetError('INTERNAL', 'Session record x in Redis is malformed')));
    assert.ok(!isOutageError('a string'));
  });
});

describe('logRedisOutages', () => {
  it('a call failing before the client reports the closed connection starts the one outage line', () => {
    const told: Line[] = [];
    const logger = recordingLogger(told);
    const lines = () => told.map((l) => `${l.level} ${l.msg}`);
    // Never connected: its status is not 'ready', as a client whose socket just dropped.
    const client = new Redis('redis://127.0.0.1:1/0', { lazyConnect: true });
    const watch = logRedisOutages(client, logger, () => false);
    try {
      assert.equal(watch.covers(new Error('malformed bus message (x): invalid')), false, 'not an outage');
      assert.deepEqual(lines(), []);
      const failed = new Error('instance heartbeat failed', { cause: new Error('Connection is closed.') });
      assert.equal(watch.covers(failed), true);
      assert.equal(watch.covers(failed), true);
      client.emit('close');
      assert.deepEqual(lines(), [
        'warn Redis unreachable at redis://127.0.0.1:1/0: Connection is closed.; requests answer 503 until it is back',
      ]);
      assert.equal(watch.down, true);
    } finally {
      watch.stop();
      client.disconnect();
    }
  });
});
