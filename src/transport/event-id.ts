import { randomHex } from '../random.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
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

/** Longest stream id the event-id codec takes. */
const MAX_STREAM_ID = 160;

/**
 * A new POST stream id that names the instance producing it and the requests it answers, so an
 * instance resuming it knows whom to ask — and, if that instance is gone, which requests to answer
 * with an error — without a lookup: 16 random hex characters, the length of the next part as two hex
 * digits, the producer's instance id in URL-safe base64, then the JSON of the request ids in URL-safe
 * base64 (left out when it would not fit: a big batch is resumed without that help).
 */
export function newStreamId(instanceId: string, requestIds: readonly RequestId[] = []): string {
  const head = randomHex(8) + producerPart(instanceId);
  if (requestIds.length === 0) return head;
  const ids = Buffer.from(JSON.stringify(requestIds)).toString('base64url');
  return head.length + ids.length <= MAX_STREAM_ID ? head + ids : head;
}

let lastProducer: { instanceId: string; part: string } | undefined;

/** The producer's part of a stream id (its length in hex, then the id in base64url); one per process. */
function producerPart(instanceId: string): string {
  if (lastProducer?.instanceId === instanceId) return lastProducer.part;
  const producer = Buffer.from(instanceId).toString('base64url');
  if (producer.length > 255) throw new RangeError('instance id too long for a stream id');
  lastProducer = { instanceId, part: producer.length.toString(16).padStart(2, '0') + producer };
  return lastProducer.part;
}

/** The instance producing a POST stream, or undefined for the standalone stream or a foreign id. */
export function producerOf(streamId: string): string | undefined {
  const parts = splitStreamId(streamId);
  return parts && Buffer.from(parts.producer, 'base64url').toString();
}

/** The ids of the requests a POST stream answers, when its id carries them. */
export function requestIdsOf(streamId: string): RequestId[] | undefined {
  const parts = splitStreamId(streamId);
  if (!parts || parts.ids === '') return undefined;
  try {
    const ids: unknown = JSON.parse(Buffer.from(parts.ids, 'base64url').toString());
    if (Array.isArray(ids) && ids.every((id) => typeof id === 'string' || typeof id === 'number')) {
      return ids as RequestId[];
    }
  } catch {
    // a stream id we did not make: no ids (the caller treats them as unknown)
  }
  return undefined;
}

function splitStreamId(streamId: string): { producer: string; ids: string } | undefined {
  if (streamId === STANDALONE_STREAM_ID || !/^[0-9a-f]{18}/.test(streamId)) return undefined;
  const len = Number.parseInt(streamId.slice(16, 18), 16);
  if (len === 0 || streamId.length < 18 + len) return undefined;
  return { producer: streamId.slice(18, 18 + len), ids: streamId.slice(18 + len) };
}
