import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../app/logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
  return { lines, stream: stream as unknown as NodeJS.WritableStream };
}

describe('logger', () => {
  it('binds instanceId to every line, including children', () => {
    const { lines, stream } = capture();
    const log = createLogger({ environment: 'production', logLevel: 'info' }, 'pod-7', stream);
    log.info('one');
    log.child({ sessionId: 's1' }).warn({ x: 1 }, 'two');
    log.debug('below the level');
    assert.equal(lines.length, 2);
    assert.ok(lines.every((l) => l['instanceId'] === 'pod-7'));
    assert.equal(lines[1]?.['sessionId'], 's1');
    assert.match(String(lines[0]?.['time']), /^\d{4}-\d\d-\d\dT/);
  });

  it('redacts credentials wherever they are logged', () => {
    const { lines, stream } = capture();
    const log = createLogger({ environment: 'production', logLevel: 'info' }, 'pod-7', stream);
    log.info(
      { req: { headers: { authorization: 'Bearer abc.def.ghi', cookie: 'sid=1', host: 'h' } } },
      'request',
    );
    log.info({ headers: { authorization: 'Bearer abc.def.ghi' } }, 'headers');
    log.info({ token: 'abc.def.ghi', auth: { token: 'abc.def.ghi' } }, 'tokens');
    log.info({ config: { jwt: { secret: 'topsecret' }, apiKey: 'vt-key' } }, 'nested');
    log.info(
      { jwt: { secret: 'topsecret' }, virustotal: { apiKey: 'vt-key' }, databaseUrl: 'postgres://u:pw@h/d' },
      'config',
    );
    const text = JSON.stringify(lines);
    for (const secret of ['abc.def.ghi', 'sid=1', 'topsecret', 'vt-key', 'pw@h']) {
      assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    }
    assert.ok(text.includes('[redacted]'));
    assert.ok(text.includes('"host":"h"'), 'non-secret header kept');
  });
});
