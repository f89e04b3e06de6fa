import { randomHex } from './random.js';
import { FleetError } from './errors.js';

/** A new session id: 128 random bits from the CSPRNG, hex (32 visible ASCII characters). */
export function newSessionId(): string {
  return randomHex(16);
}

// Ids this library issues are 32 hex chars; ids of other servers (e.g. an earlier deployment's UUIDs)
// are well-formed if they are visible ASCII without the hash-tag braces, so they get a clean 404.
const WELL_FORMED = /^[\x21-\x7a\x7c\x7e]{8,128}$/;

/** Throws a 400 for an id that no server could have issued; runs before any store access. */
export function assertSessionId(id: string): void {
  if (!WELL_FORMED.test(id))
    throw new FleetError('SESSION_ID_MALFORMED', 'Bad Request: malformed session id');
}
