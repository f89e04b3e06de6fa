// A held stream that must let its connection go (the store failed under it, a drain, a poll) leaves
// the client able to resume — or, when it cannot, answers its requests: never a silent end.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { MemoryEventLog } from '../../src/events/memory-event-log.js';
import { HeldStream } from '../../src/streams/held-stream.js';
import type { ClientConnection } from '../../src/transport/connection.js';

/** Records what a client would see on the wire. */
class Wire implements ClientConnection {
  readonly seen: string[] = [];
  opened = false;
  closed = false;
  open(primingEventId?: string): void {
    this.opened = true;
    this.seen.push(`open ${primingEventId ?? '(no id)'}`);
  }
  write(message: JSONRPCMessage, eventId: string | undefined): void {
    this.seen.push(`event ${eventId ?? '(no id)'} ${JSON.stringify(message)}`);
  }
  end(): void {
    this.closed = true;
    this.seen.push('end');
  }
  disconnect(retryMs?: number): void {
    this.closed = true;
    this.seen.push(`disconnect retry ${retryMs}`);
  }
  onceClosed(): void {}
}

const held = (wire: Wire, priming: string | undefined) => {
  const log = new MemoryEventLog({ ttlMs: 60_000 });
  const h = new HeldStream(
    's1',
    'p1',
    wire,
    0,
    log,
    () => {},
    () => {},
  );
  h.primingEventId = priming;
  h.expect([7]);
  return h;
};

describe('HeldStream.disconnect', () => {
  it('opens a connection not opened yet with its priming event first, so the client can resume', () => {
    const wire = new Wire();
    held(wire, 'p1.0').disconnect(1000);
    assert.deepEqual(wire.seen, ['open p1.0', 'disconnect retry 1000']);
  });

  it('answers the requests due when the client got no event id to resume from', () => {
    const wire = new Wire();
    held(wire, undefined).disconnect(1000);
    assert.equal(wire.seen[0], 'open (no id)');
    assert.match(wire.seen[1]!, /^event \(no id\) \{"jsonrpc":"2.0","id":7,"error":\{"code":-32603,/);
    assert.equal(wire.seen[2], 'disconnect retry 1000');
  });
});
