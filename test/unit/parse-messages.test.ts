// The one parser of POST bodies (Streamable HTTP and legacy SSE): what it refuses, with which code.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FleetError } from '../../src/errors.js';
import { MAX_JSON_DEPTH, parseMessages } from '../../src/http/streamable.js';

const ping = (params: string) => Buffer.from(`{"jsonrpc":"2.0","id":1,"method":"ping","params":${params}}`);
/** `levels` nested objects/arrays in total, `params` itself being the outermost + 1 (the message). */
const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
const refused = (code: string, message: RegExp) => (err: unknown) =>
  err instanceof FleetError && err.code === code && message.test(err.message);

describe('parseMessages', () => {
  it(`accepts ${MAX_JSON_DEPTH} levels of nesting and refuses one more with a 400, not an outage later`, () => {
    // The message object is one level; params adds the rest.
    const ok = ping(`{"x":${deep(MAX_JSON_DEPTH - 2)}}`);
    assert.equal(parseMessages(ok).messages.length, 1);
    assert.throws(
      () => parseMessages(ping(`{"x":${deep(MAX_JSON_DEPTH - 1)}}`)),
      refused('INVALID_REQUEST', new RegExp(`nested deeper than ${MAX_JSON_DEPTH} levels`)),
    );
    assert.throws(() => parseMessages(ping(`{"x":${deep(20_000)}}`)), refused('INVALID_REQUEST', /nested/));
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const tricky = JSON.stringify({ s: '['.repeat(500) + '\\"{{{' + '"'.repeat(3) + '{'.repeat(500) });
    assert.equal(parseMessages(ping(`{"t":${tricky}}`)).messages.length, 1);
  });

  it('still tells bad JSON (-32700) from a non-message (-32600)', () => {
    assert.throws(() => parseMessages(Buffer.from('[[[')), refused('PARSE_ERROR', /Invalid JSON/));
    assert.throws(() => parseMessages(Buffer.from('{"a":1}')), refused('INVALID_REQUEST', /JSON-RPC/));
  });
});
