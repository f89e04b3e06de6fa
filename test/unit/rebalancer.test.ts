// The rebalancing policy with an injected clock and stand-in copies: fair share, slack, idleness,
// the rate limit, and where a session without an owner is placed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RebalancePolicy } from '../../src/options.js';
import type { LiveSession } from '../../src/session/live-session.js';
import { Rebalancer } from '../../src/session/rebalancer.js';
import type { InstanceRecord } from '../../src/store/instance-registry.js';
import { ManualClock } from '../helpers/manual-clock.js';

const POLICY: RebalancePolicy = { slack: 0.2, idleMs: 1000, maxPerSecond: 5, intervalMs: 2000 };

/** The parts of a copy the rebalancer reads. */
function copy(
  id: string,
  opts: { busy?: boolean; lastActivity?: number; lastOutput?: number } = {},
): LiveSession {
  return {
    id,
    busy: opts.busy ?? false,
    handoff: undefined,
    lastActivity: opts.lastActivity ?? 0,
    lastOutput: opts.lastOutput ?? 0,
    record: { transport: 'streamable-http' },
  } as unknown as LiveSession;
}

const peer = (instanceId: string, owned: number, draining = false): InstanceRecord => ({
  instanceId,
  owned,
  draining,
  startedAt: 0,
  beats: 1,
});

function setup(mine: LiveSession[], peers: InstanceRecord[], policy = POLICY) {
  const clock = new ManualClock();
  const handedOff: string[] = [];
  const r = new Rebalancer({
    instanceId: 'me',
    policy,
    clock,
    instances: async () => [peer('me', mine.length - handedOff.length), ...peers],
    copies: () => mine.filter((c) => !handedOff.includes(c.id)),
    handoff: (c) => {
      handedOff.push(c.id);
      // The next request of the session makes a peer its owner (in turn, among those not draining).
      const takers = peers.filter((p) => !p.draining);
      if (takers.length > 0) takers[handedOff.length % takers.length]!.owned++;
    },
    draining: () => false,
    onError: (err) => assert.fail(err),
  });
  return { clock, r, handedOff };
}

describe('Rebalancer (injected clock)', () => {
  it('hands off idle sessions above the fair share, down to the mean, within the rate', async () => {
    // 30 here, 0 + 0 elsewhere: the share is 10; 5/s × 2 s = 10 per round.
    const mine = Array.from({ length: 30 }, (_, i) => copy(`s${i}`));
    const { clock, r, handedOff } = setup(mine, [peer('a', 0), peer('b', 0)]);
    clock.freeze(5000); // everything has been idle for a while
    await r.tick();
    assert.equal(handedOff.length, 10, 'one round: the rate limit');
    await r.tick();
    assert.equal(handedOff.length, 10, 'not before intervalMs');
    clock.freeze(2000);
    await r.tick();
    assert.equal(
      handedOff.length,
      20,
      'down to the mean (20 - 10 = 10 more would overshoot: stops at the mean)',
    );
    clock.freeze(2000);
    await r.tick();
    assert.equal(handedOff.length, 20, 'at the mean now: nothing more moves');
  });

  it('never moves a busy session, nor one with a message either way within idleMs; oldest first', async () => {
    const now = new ManualClock().now();
    const mine = [
      copy('busy', { busy: true }),
      copy('recent-request', { lastActivity: now - 200 }),
      copy('recent-output', { lastOutput: now - 500 }),
      copy('old', { lastActivity: now - 9000 }),
      copy('older', { lastActivity: now - 20_000 }),
      ...Array.from({ length: 5 }, (_, i) => copy(`x${i}`, { busy: true })),
    ];
    const { r, handedOff } = setup(mine, [peer('a', 0)], { ...POLICY, maxPerSecond: 100 });
    await r.tick();
    assert.deepEqual(handedOff, ['older', 'old']);
  });

  it('does nothing within the slack, or alone, or for peers that drain', async () => {
    const eleven = Array.from({ length: 11 }, (_, i) => copy(`s${i}`));
    const within = setup(eleven, [peer('a', 10), peer('b', 9)]); // share 10, limit 12
    within.clock.freeze(5000);
    await within.r.tick();
    assert.deepEqual(within.handedOff, []);
    const alone = setup(eleven, []);
    alone.clock.freeze(5000);
    await alone.r.tick();
    assert.deepEqual(alone.handedOff, [], 'the only instance keeps everything');
    const draining = setup(eleven, [peer('a', 0, true)]);
    draining.clock.freeze(5000);
    await draining.r.tick();
    assert.deepEqual(draining.handedOff, [], 'a draining peer takes nothing');
  });

  it('places a session without an owner on the least loaded peer while above the share', async () => {
    const mine = Array.from({ length: 30 }, (_, i) => copy(`s${i}`, { busy: true }));
    const { r } = setup(mine, [peer('a', 2), peer('b', 5), peer('c', 40)]);
    assert.equal(r.placeFor(), undefined, 'no view of the fleet yet: claim here');
    await r.tick(); // share (30 + 47) / 4 = 19.25
    assert.equal(r.placeFor(), 'a');
    assert.equal(r.placeFor(new Set(['a'])), 'b', 'excluding one found dead');
    // Each placement counts: a burst does not all land on one peer.
    const burst = Array.from({ length: 10 }, () => r.placeFor());
    assert.ok(burst.includes('b'), `spread: ${burst.join(' ')}`);
    const few = setup([copy('only')], [peer('a', 10)]);
    await few.r.tick();
    assert.equal(few.r.placeFor(), undefined, 'below the share: claim here');
  });
});
