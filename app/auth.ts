import type { IncomingMessage } from 'node:http';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { UnauthorizedError, type Principal } from 'mcp-fleet';
import type { JwtAlgorithm } from './config.js';

/** Shared-secret JWT settings (from `JWT_SECRET_KEY`, `JWT_ALGORITHM`, `JWT_ISSUER` and `JWT_AUDIENCE`). */
export interface JwtSettings {
  secret: string;
  algorithm: JwtAlgorithm;
  /** When set, the token's `iss` claim must equal it. */
  issuer?: string | undefined;
  /** When set, the token's `aud` claim must be it or a list containing it. */
  audience?: string | undefined;
}

/** Challenge sent with a request that carried no credentials (RFC 6750 §3.1: no error code then). */
export const CHALLENGE_MISSING = 'Bearer realm="mcp"';
/** Challenge sent with a request whose token was rejected. */
export const CHALLENGE_INVALID = 'Bearer realm="mcp", error="invalid_token"';

/** Accepted clock skew between the token issuer and this server. */
const CLOCK_TOLERANCE_SECONDS = 5;

function secretKey(settings: JwtSettings): Uint8Array {
  return new TextEncoder().encode(settings.secret);
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i.exec(header);
  if (match === null)
    throw new UnauthorizedError('Authorization header is not a Bearer token', CHALLENGE_INVALID);
  return match[1];
}

/** Why a token was rejected, in words safe to show a client (no token contents). */
function rejection(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'Token has expired';
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return 'Token is signed with an algorithm this server does not accept';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'Token signature is invalid';
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return `Token claim "${err.claim}" is missing or invalid`;
  return 'Token is malformed';
}

/**
 * Verifies a bearer token and returns the principal it names: `sub` is the principal id (sessions are bound to
 * it), `scope` (space separated) becomes `authInfo.scopes`. `sub` and `exp` are required, and so are `iss` /
 * `aud` when the settings name an issuer / audience.
 * @throws UnauthorizedError with a `WWW-Authenticate` challenge when the token is missing or invalid.
 */
export async function verifyToken(token: string, settings: JwtSettings): Promise<Principal> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secretKey(settings), {
      algorithms: [settings.algorithm],
      requiredClaims: ['sub', 'exp'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(settings.issuer === undefined ? {} : { issuer: settings.issuer }),
      ...(settings.audience === undefined ? {} : { audience: settings.audience }),
    }));
  } catch (err) {
    throw new UnauthorizedError(rejection(err), CHALLENGE_INVALID);
  }
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub === '') {
    throw new UnauthorizedError('Token claim "sub" is missing or invalid', CHALLENGE_INVALID);
  }
  const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
  return {
    id: sub,
    authInfo: {
      token,
      clientId: sub,
      scopes: scope.split(' ').filter((s) => s !== ''),
      ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
    },
  };
}

/**
 * The fleet's `authenticate` hook: every MCP request needs `Authorization: Bearer <JWT>` signed with the
 * configured secret and algorithm.
 */
export function createAuthenticator(settings: JwtSettings): (req: IncomingMessage) => Promise<Principal> {
  return async (req) => {
    const token = bearerToken(req);
    if (token === undefined) throw new UnauthorizedError('Missing bearer token', CHALLENGE_MISSING);
    return verifyToken(token, settings);
  };
}

/** Claims of a token made by {@link signToken}. */
export interface TokenClaims {
  /** Principal id. */
  sub: string;
  /** Lifetime in seconds. @default 3600 */
  ttlSeconds?: number;
  /** Space-separated scopes. */
  scope?: string;
}

/**
 * Signs a token this server accepts, with the configured issuer and audience if any (for development and
 * tests; production tokens come from your IdP).
 */
export async function signToken(settings: JwtSettings, claims: TokenClaims): Promise<string> {
  const jwt = new SignJWT(claims.scope === undefined ? {} : { scope: claims.scope })
    .setProtectedHeader({ alg: settings.algorithm, typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (claims.ttlSeconds ?? 3600));
  if (settings.issuer !== undefined) jwt.setIssuer(settings.issuer);
  if (settings.audience !== undefined) jwt.setAudience(settings.audience);
  return jwt.sign(secretKey(settings));
}
