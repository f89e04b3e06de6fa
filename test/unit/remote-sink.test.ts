// RemoteSink: deliveries of a stream produced here to the instance holding its connection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBus, MemoryBusHub } from '../../src/bus/memory-bus.js';
import type { FleetBus } from '../../src/bus/protocol.js';
import { RemoteSink } from '../../src/streams/remote-sink.js';
import { waitFor as until } from '../helpers/wait.js';

describe('RemoteSink', () => {
  it('keeps going, and reports, when the store cannot say whether a silent holder is gone', async () => {
    const bus = new MemoryBus(new MemoryBusHub()) as FleetBus;
    await bus.start('owner', () => {});
    const errors: Error[] = [];
    let checks = 0;
    let gone = 0;
    const sink = new RemoteSink({
      bus,
      from: 'owner',
      holder: 'nobody-subscribed',
      sessionId: 's',
      streamId: 'st',
      logged: true,
      // Redis away: the liveness read fails. Before the fix this rejection was unhandled (a crash).
      confirmGone: async () => {
        checks++;
        throw new Error('STORE_UNAVAILABLE');
      },
      onGone: () => gone++,
      onError: (err) => errors.push(err),
    });
    sink.write(
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 1 } },
      undefined,
      1,
    );
    await until('the failed check is reported', () => errors.length === 1);
    assert.match(errors[0]!.message, /could not check whether nobody-subscribed is gone/);
    assert.equal(gone, 0, 'not declared gone on a failed check');
    // The next delivery asks again (the sink is still in use).
    sink.write(
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 2 } },
      undefined,
      2,
    );
    await until('a second check', () => checks === 2);
    await bus.close();
  });
});
