import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_TABLE, FleetError, UnauthorizedError } from '../../src/errors.js';

describe('error table', () => {
  it('maps the codes the spec and the issue pin', () => {
    assert.deepEqual(ERROR_TABLE.SESSION_NOT_FOUND, { status: 404, rpc: -32001 });
    assert.equal(ERROR_TABLE.SESSION_ID_REQUIRED.status, 400);
    assert.equal(ERROR_TABLE.NOT_ACCEPTABLE.status, 406);
    assert.equal(ERROR_TABLE.UNSUPPORTED_MEDIA_TYPE.status, 415);
    assert.equal(ERROR_TABLE.BODY_TOO_LARGE.status, 413);
    assert.deepEqual(ERROR_TABLE.PARSE_ERROR, { status: 400, rpc: -32700 });
    assert.equal(ERROR_TABLE.METHOD_NOT_ALLOWED.status, 405);
    assert.equal(ERROR_TABLE.STORE_UNAVAILABLE.status, 503);
    // A routing give-up is retryable like a store outage, but has its own code (not counted as one).
    assert.deepEqual(ERROR_TABLE.SESSION_MOVING, { status: 503, rpc: -32603 });
  });
  it('gives every code a 4xx/5xx status and a JSON-RPC error code', () => {
    for (const [code, v] of Object.entries(ERROR_TABLE)) {
      assert.ok(v.status >= 400 && v.status < 600, code);
      assert.ok(v.rpc <= -32000 && v.rpc >= -32768, code);
    }
  });
  it('errors carry their status', () => {
    assert.equal(new FleetError('CONFLICT', 'x').status, 409);
    const u = new UnauthorizedError('nope', 'Bearer realm="x"');
    assert.equal(u.status, 401);
    assert.equal(u.wwwAuthenticate, 'Bearer realm="x"');
  });
});
