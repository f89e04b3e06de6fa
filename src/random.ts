import { randomFillSync } from 'node:crypto';

// Random ids are drawn from a pool filled 4 KiB at a time from the CSPRNG (as `crypto.randomUUID`
// does): one call into OpenSSL per few hundred ids instead of one per id, which showed up at ~2 % of
// a warm request's CPU. Bytes are handed out once; the pool is refilled when it runs out.
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

function take(bytes: number): Buffer {
  if (bytes > POOL_SIZE) throw new RangeError('at most 4096 random bytes at a time');
  if (offset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const slice = pool.subarray(offset, offset + bytes);
  offset += bytes;
  return slice;
}

/** `bytes` random bytes from the CSPRNG, as lowercase hex. */
export function randomHex(bytes: number): string {
  return take(bytes).toString('hex');
}

/** `bytes` random bytes from the CSPRNG, as unpadded base64url. */
export function randomBase64url(bytes: number): string {
  return take(bytes).toString('base64url');
}
