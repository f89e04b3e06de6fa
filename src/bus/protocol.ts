import { z } from 'zod';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { MessageBus } from './message-bus.js';

/**
 * The messages instances send each other over the bus: one typed union, validated on arrival by
 * {@link decodeBusMessage}. Each message names its kind in `t`. Who sends what:
 *
 * - `handle` (any instance → a session's owner): client messages of a session for its one live copy.
 *   Answered with `handled`. With `claim`, the receiver claims the session first (the sender saw no
 *   usable owner but cannot take it itself, e.g. while draining).
 * - `handled` (owner → sender of a `handle`): accepted, or why not.
 * - `deliver` (a stream's producer → the instance holding its connection): events, in order.
 * - `wake` (producer → holder): read the stream's event log (an event too large for the bus).
 * - `unheld` (an instance → a producer): "I do not hold that stream": stop delivering there.
 * - `takeover` (new holder → producer): a client resumed the stream here; deliver here from now on.
 * - `stream-gone` (producer → holder): the stream ended or never ran here; end after the replay.
 * - `release` (the producer or a new holder → the old holder): stop writing to your connection.
 * - `poll` (owner → holder): close the connection with a retry hint (SSE polling).
 * - `attach` / `detach` (holder of the standalone GET stream → owner): where that stream is held.
 * - `answer` (any instance → the one that sent a server→client request): the client's answer.
 * - `ping` / `pong` (an instance waiting on streams → their producer): are these still running?
 * - `released` (a draining owner → instances it turned away): the session has no owner now.
 * - `deleted` (broadcast): a session was deleted; drop everything of it.
 * - `end` (any instance → a legacy session's owner): the session was ended elsewhere; close its stream.
 */

const sid = z.string().min(1).max(256);
const instance = z.string().min(1).max(200);
const streamId = z.string().min(1).max(200);
const jsonRpc = z.custom<JSONRPCMessage>(
  (v) =>
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    (v as { jsonrpc?: unknown }).jsonrpc === '2.0',
  'not a JSON-RPC message',
);
const streamRef = z.object({ sid, streamId });
const ownership = z.object({ owner: z.string().max(200), epoch: z.number().int().nonnegative() });

const handle = z.object({
  t: z.literal('handle'),
  callId: z.string().min(1).max(100),
  from: instance,
  sid,
  /** The ownership the sender saw; the receiver acts only if it is (or, with `claim`, becomes) the owner. */
  seen: ownership,
  claim: z.boolean(),
  principal: z.string().min(1),
  messages: z.array(jsonRpc).min(1),
  /** Request headers without credentials, and the auth info without its token. */
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  authInfo: z.record(z.string(), z.unknown()).optional(),
  /** The stream the answers go to (when the messages hold requests): held by `from`. */
  stream: z.object({ streamId, resumable: z.boolean(), priming: z.boolean() }).optional(),
});

const handled = z.object({
  t: z.literal('handled'),
  callId: z.string().min(1).max(100),
  outcome: z.enum(['accepted', 'not-owner', 'draining', 'error', 'rejoin']),
  /** With `error`: the FleetError code and message the sender answers its client with. */
  code: z.string().optional(),
  message: z.string().optional(),
  /** With `rejoin`: the messages were a resend of requests running on this stream; resume it. */
  streamId: z.string().min(1).max(200).optional(),
});

const deliver = z.object({
  t: z.literal('deliver'),
  /** The producer (told `unheld` when the receiver does not hold the stream). */
  from: instance,
  sid,
  streamId,
  /** Events in order; `seq` 0 for a stream without an event log. */
  events: z.array(z.object({ seq: z.number().int().nonnegative(), data: z.string() })),
  /** The stream ended after these events. */
  end: z.boolean(),
  /** A forwarded call this delivery also acknowledges (the first delivery of its stream). */
  ack: z.string().min(1).max(100).optional(),
});

const wake = z.object({ t: z.literal('wake'), sid, streamId });
const unheld = z.object({ t: z.literal('unheld'), sid, streamId, holder: instance });
const takeover = z.object({ t: z.literal('takeover'), sid, streamId, holder: instance });
const streamGone = z.object({ t: z.literal('stream-gone'), sid, streamId });
const release = z.object({ t: z.literal('release'), sid, streamId, holder: instance });
const poll = z.object({
  t: z.literal('poll'),
  sid,
  streamId,
  retryMs: z.number().int().positive().optional(),
});
const attach = z.object({ t: z.literal('attach'), sid, holder: instance });
const detach = z.object({ t: z.literal('detach'), sid, holder: instance });
const answer = z.object({ t: z.literal('answer'), sid, message: jsonRpc });
const ping = z.object({
  t: z.literal('ping'),
  from: instance,
  nonce: z.string().max(100),
  streams: z.array(streamRef),
});
const pong = z.object({ t: z.literal('pong'), nonce: z.string().max(100), gone: z.array(streamRef) });
const released = z.object({ t: z.literal('released'), sid });
const deleted = z.object({ t: z.literal('deleted'), sid, from: instance });
const end = z.object({ t: z.literal('end'), sid });
/** A `ServerEventBus` event (SDK v2) published on `from`: listeners and sessions everywhere get it. */
const event = z.object({
  t: z.literal('event'),
  from: instance,
  event: z.union([
    z.object({
      kind: z.enum(['tools_list_changed', 'prompts_list_changed', 'resources_list_changed']),
      params: z.record(z.string(), z.unknown()).optional(),
    }),
    z.object({
      kind: z.literal('resource_updated'),
      uri: z.string().max(8192),
      params: z.record(z.string(), z.unknown()).optional(),
    }),
  ]),
});

const BusMessageSchema = z.discriminatedUnion('t', [
  handle,
  handled,
  deliver,
  wake,
  unheld,
  takeover,
  streamGone,
  release,
  poll,
  attach,
  detach,
  answer,
  ping,
  pong,
  released,
  deleted,
  end,
  event,
]);

/** Any message on the bus. */
export type BusMessage = z.infer<typeof BusMessageSchema>;
/** The kinds of bus messages (the `t` field). */
export type BusKind = BusMessage['t'];
/** The bus message of one kind. */
export type BusMessageOf<K extends BusKind> = Extract<BusMessage, { t: K }>;

/** Every kind, in one list (metric labels are bounded by it). */
export const BUS_KINDS: readonly BusKind[] = BusMessageSchema.options.map((o) => o.shape.t.value);

/** The message, or an error saying what is wrong with it (a foreign or corrupt publisher). */
export function decodeBusMessage(value: unknown): BusMessage | Error {
  const parsed = BusMessageSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const kind =
    typeof value === 'object' && value !== null ? String((value as { t?: unknown }).t) : typeof value;
  return new Error(`malformed bus message (${kind}): ${parsed.error.issues[0]?.message ?? 'invalid'}`);
}

/** The bus as the fleet uses it: typed with the protocol's messages. */
export type FleetBus = MessageBus<BusMessage>;
