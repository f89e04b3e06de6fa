// `requestState` for multi-round-trip requests (`input_required`, 2026-07-28; also what the SDK's
// legacy shim echoes in a 2025 session): one key ring shared by the fleet — round 1 minted on A
// verifies on B — rotatable (mint with the first key, verify with any), bound to the principal by
// default, and optionally single-use fleet-wide (a replayed state is rejected on every instance).
// The sealing itself is the SDK v2's `createRequestStateCodec` (HMAC-SHA256); this adds what it
// leaves to the deployment: several keys, the binding, and the spent-state record in Redis.
import { randomBytes } from 'node:crypto';
import type { RequestStateCodec } from '@modelcontextprotocol/server';
import type { SpentTokens } from '../store/spent-tokens.js';

/** Options of `requestState` in `createFleet`. */
export interface RequestStateOptions {
  /**
   * HMAC keys, each at least 32 bytes: states are minted with the first and verified with any. To
   * rotate, roll out `[old, new]` (every instance accepts the new key), then `[new, old]` (instances
   * mint with it), then — `ttlSeconds` later, when no state minted with the old key is valid — `[new]`.
   */
  keys: ReadonlyArray<string | Uint8Array>;
  /** How long a minted state stays valid. @default 600 */
  ttlSeconds?: number | undefined;
  /**
   * Bind each state to whom it was minted for: the principal of a 2026-07-28 request, the session
   * in the 2025 era; a state presented by anyone else is rejected. @default true
   */
  bind?: boolean | undefined;
  /**
   * Reject a state redeemed before — on every instance, until it expires (one `SET NX` in Redis per
   * verification; in memory when embedded). Mint a new state for each round. @default false
   */
  singleUse?: boolean | undefined;
}

/** `fleet.requestState`: pass `verify` as the SDK v2 server's `requestState.verify`, mint in handlers. */
export interface FleetRequestState {
  /** Seals `payload` (JSON) into the `requestState` a handler returns with `inputRequired(…)`. */
  mint<T>(payload: T, ctx: unknown): Promise<string>;
  /** Verifies an echoed state and resolves to its payload (`ctx.mcpReq.requestState<T>()`); throws when it is not valid. */
  verify(state: string, ctx: unknown): Promise<unknown>;
}

type Codec = RequestStateCodec<{ n: string; v: unknown }>;

export interface RequestStateDeps {
  /** The principal of the 2026-07-28 request being served, if any. */
  principalNow(): string | undefined;
  spent: SpentTokens;
}

/** The fleet's key ring (a state is bound to `p:<principal>` or `s:<session>`). */
export class RequestStateRing implements FleetRequestState {
  private codecs: Promise<Codec[]> | undefined;
  private readonly ttlSeconds: number;

  constructor(
    private readonly opts: RequestStateOptions | undefined,
    private readonly deps: RequestStateDeps,
  ) {
    this.ttlSeconds = opts?.ttlSeconds ?? 600;
    if (opts) {
      if (opts.keys.length === 0) throw new TypeError('requestState.keys needs at least one key');
      for (const k of opts.keys) {
        const bytes = typeof k === 'string' ? Buffer.byteLength(k) : k.byteLength;
        if (bytes < 32) throw new RangeError('every requestState key must be at least 32 bytes');
      }
    }
  }

  readonly mint = async <T>(payload: T, ctx: unknown): Promise<string> => {
    const [first] = await this.ring();
    // A nonce per state: equal payloads minted in the same second still make distinct states.
    return first!.mint({ n: randomBytes(9).toString('base64url'), v: payload }, ctx as never);
  };

  readonly verify = async (state: string, ctx: unknown): Promise<unknown> => {
    let payload: { n: string; v: unknown } | undefined;
    for (const codec of await this.ring()) {
      try {
        payload = await codec.verify(state, ctx as never);
        break;
      } catch (err) {
        if (!(err instanceof Error && err.message === 'mac')) throw err; // expired, bind, malformed
      }
    }
    if (!payload) throw new Error('mac');
    if (this.opts?.singleUse) {
      const mac = state.slice(state.lastIndexOf('.') + 1);
      if (!(await this.deps.spent.spend(mac, this.ttlSeconds * 1000))) throw new Error('replayed');
    }
    return payload.v;
  };

  private ring(): Promise<Codec[]> {
    const opts = this.opts;
    if (!opts) {
      return Promise.reject(
        new Error('fleet.requestState needs keys: createFleet({ requestState: { keys: [secret] } })'),
      );
    }
    this.codecs ??= import('@modelcontextprotocol/server').then((v2) =>
      opts.keys.map((key) =>
        v2.createRequestStateCodec<{ n: string; v: unknown }>({
          key,
          ttlSeconds: this.ttlSeconds,
          ...(opts.bind === false ? {} : { bind: (ctx) => this.bindingOf(ctx) }),
        }),
      ),
    );
    return this.codecs;
  }

  private bindingOf(ctx: unknown): string {
    const principal = this.deps.principalNow();
    if (principal !== undefined) return `p:${principal}`;
    const sid = (ctx as { sessionId?: unknown } | undefined)?.sessionId;
    return typeof sid === 'string' && sid !== '' ? `s:${sid}` : 'p:anonymous';
  }
}
