import { randomBytes } from 'node:crypto';
import { FleetError } from '../errors.js';

/**
 * The one codec of SSE event ids: `<streamId>.<seq>`. Stream ids are URL-safe base64 tokens
 * (`[A-Za-z0-9_-]{1,160}`), so the `.` separator is unambiguous; seq is a decimal integer ≥ 0
 * (0 is the priming event: "nothing received yet").
 */
const EVENT_ID = /^([A-Za-z0-9_-]{1,160})\.(0|[1-9][0-9]{0,15})$/;
const STREAM_ID = /^[A-Za-z0-9_-]{1,160}$/;

/** Parsed event id. */
export interface EventCursor {
  streamId: string;
  seq: number;
}

/** Encodes a stream id and sequence number into an SSE event id. */
export function encodeEventId(streamId: string, seq: number): string {
  if (!STREAM_ID.test(streamId) || !Number.isSafeInteger(seq) || seq < 0) {
    throw new Error(`cannot encode event id for stream ${streamId} seq ${seq}`);
  }
  return `${streamId}.${seq}`;
}

/** Decodes a `Last-Event-ID`; a malformed one is a client error (400), checked before any store access. */
export function decodeEventId(eventId: string): EventCursor {
  const m = EVENT_ID.exec(eventId);
  if (!m) throw new FleetError('EVENT_ID_MALFORMED', 'Bad Request: malformed Last-Event-ID');
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(seq))
    throw new FleetError('EVENT_ID_MALFORMED', 'Bad Request: malformed Last-Event-ID');
  return { streamId: m[1]!, seq };
}

/** Id of the standalone `GET` stream of every session (one per session). */
export const STANDALONE_STREAM_ID = 'standalone';

/**
 * A new POST stream id that names the instance producing it: 16 random hex characters, then the
 * instance id in URL-safe base64. An instance resuming the stream knows whom to ask, without a lookup.
 */
export function newStreamId(instanceId: string): string {
  return randomBytes(8).toString('hex') + Buffer.from(instanceId).toString('base64url');
}

/** The instance producing a POST stream, or undefined for the standalone stream or a foreign id. */
export function producerOf(streamId: string): string | undefined {
  if (streamId === STANDALONE_STREAM_ID || streamId.length <= 16) return undefined;
  return Buffer.from(streamId.slice(16), 'base64url').toString();
}
