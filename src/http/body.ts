import type { IncomingMessage } from 'node:http';
import { FleetError } from '../errors.js';

/**
 * Reads a request body of at most `limit` bytes; a larger one is a 413, detected without buffering it.
 * A body already consumed by a body parser in front of us (Express `express.json()`) is taken from
 * `req.body` instead of the spent stream.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== undefined && (req.readableEnded || req.complete)) {
    const buf = Buffer.from(typeof parsed === 'string' ? parsed : (JSON.stringify(parsed) ?? ''));
    return buf.length > limit ? Promise.reject(tooLarge(limit)) : Promise.resolve(buf);
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume(); // drain so the connection can answer
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed)
        reject(new FleetError('INVALID_REQUEST', 'Bad Request: body could not be read', { cause: err }));
      failed = true;
    });
  });
}

function tooLarge(limit: number): FleetError {
  return new FleetError('BODY_TOO_LARGE', `Payload Too Large: body exceeds ${limit} bytes`);
}

/** Whether a Content-Type header names JSON (parsed media type, parameters ignored). */
export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const type = header.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json';
}

/** Whether an Accept header lists `type` (or a matching wildcard). */
export function accepts(header: string | undefined, type: string): boolean {
  if (!header) return false;
  const [major] = type.split('/');
  return header
    .split(',')
    .map((p) => p.split(';', 1)[0]!.trim().toLowerCase())
    .some((t) => t === type || t === `${major}/*` || t === '*/*');
}
