import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { SignJWT } from 'jose';
import { UnauthorizedError } from '../../src/index.js';
import {
  CHALLENGE_INVALID,
  CHALLENGE_MISSING,
  createAuthenticator,
  signToken,
  type JwtSettings,
} from '../../app/auth.js';

const settings: JwtSettings = { secret: 'a'.repeat(32) + '-test-secret', algorithm: 'HS256' };
const authenticate = createAuthenticator(settings);

function request(authorization?: string): IncomingMessage {
  const req = new IncomingMessage(new Socket());
  if (authorization !== undefined) req.headers.authorization = authorization;
  return req;
}

async function rejectsWith(
  authorization: string | undefined,
  message: RegExp,
  challenge = CHALLENGE_INVALID,
) {
  await assert.rejects(authenticate(request(authorization)), (err: unknown) => {
    assert.ok(err instanceof UnauthorizedError, `expected UnauthorizedError, got ${String(err)}`);
    assert.equal(err.status, 401);
    assert.equal(err.wwwAuthenticate, challenge);
    assert.match(err.message, message);
    return true;
  });
}

/** An unsigned-yet token builder; the test picks expiry and signing key. */
function sign(claims: Record<string, unknown>, alg = 'HS256'): SignJWT {
  return new SignJWT(claims).setProtectedHeader({ alg }).setIssuedAt();
}

const key = (secret: string) => new TextEncoder().encode(secret);
const now = () => Math.floor(Date.now() / 1000);

describe('JWT authentication', () => {
  it('accepts a valid token and returns sub as the principal', async () => {
    const token = await signToken(settings, { sub: 'alice', scope: 'read write' });
    const principal = await authenticate(request(`Bearer ${token}`));
    assert.equal(principal.id, 'alice');
    assert.deepEqual(principal.authInfo?.scopes, ['read', 'write']);
    assert.equal(principal.authInfo?.clientId, 'alice');
    assert.equal(principal.authInfo?.token, token);
    assert.ok((principal.authInfo?.expiresAt ?? 0) > now());
  });

  it('accepts the scheme name case-insensitively', async () => {
    const token = await signToken(settings, { sub: 'bob' });
    assert.equal((await authenticate(request(`bearer ${token}`))).id, 'bob');
  });

  it('rejects a request without a token, with a challenge without an error code', async () => {
    await rejectsWith(undefined, /Missing bearer token/, CHALLENGE_MISSING);
  });

  it('rejects another authorization scheme', async () => {
    await rejectsWith('Basic YWxpY2U6c2VjcmV0', /not a Bearer token/);
    await rejectsWith('Bearer', /not a Bearer token/);
    await rejectsWith('Bearer a b', /not a Bearer token/);
  });

  it('rejects a malformed token', async () => {
    await rejectsWith('Bearer not-a-jwt', /malformed/);
  });

  it('rejects a bad signature', async () => {
    const token = await sign({ sub: 'mallory' })
      .setExpirationTime('1h')
      .sign(key('b'.repeat(40)));
    await rejectsWith(`Bearer ${token}`, /signature is invalid/);
  });

  it('rejects an expired token', async () => {
    const token = await sign({ sub: 'alice' })
      .setExpirationTime(now() - 60)
      .sign(key(settings.secret));
    await rejectsWith(`Bearer ${token}`, /expired/);
  });

  it('rejects a token signed with another algorithm, even with the right secret', async () => {
    const token = await sign({ sub: 'alice' }, 'HS512').setExpirationTime('1h').sign(key(settings.secret));
    await rejectsWith(`Bearer ${token}`, /algorithm/);
  });

  it('rejects an unsigned (alg "none") token', async () => {
    const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: now() + 3600 })}.`;
    await assert.rejects(authenticate(request(`Bearer ${token}`)), UnauthorizedError);
  });

  it('requires sub and exp', async () => {
    const noSub = await sign({}).setExpirationTime('1h').sign(key(settings.secret));
    await rejectsWith(`Bearer ${noSub}`, /"sub"/);
    const noExp = await sign({ sub: 'alice' }).sign(key(settings.secret));
    await rejectsWith(`Bearer ${noExp}`, /"exp"/);
    const emptySub = await sign({ sub: '' }).setExpirationTime('1h').sign(key(settings.secret));
    await rejectsWith(`Bearer ${emptySub}`, /"sub"/);
  });

  it('honours the configured algorithm', async () => {
    const hs384: JwtSettings = { ...settings, algorithm: 'HS384' };
    const token = await signToken(hs384, { sub: 'carol' });
    assert.equal((await createAuthenticator(hs384)(request(`Bearer ${token}`))).id, 'carol');
    await rejectsWith(`Bearer ${token}`, /algorithm/);
  });
});

describe('JWT issuer and audience (JWT_ISSUER / JWT_AUDIENCE)', () => {
  const strict: JwtSettings = { ...settings, issuer: 'https://idp.example/', audience: 'mcp-fleet' };
  const check = createAuthenticator(strict);
  const token = (claims: { iss?: string; aud?: string | string[] }) => {
    const jwt = sign({ sub: 'alice' }).setExpirationTime('1h');
    if (claims.iss !== undefined) jwt.setIssuer(claims.iss);
    if (claims.aud !== undefined) jwt.setAudience(claims.aud);
    return jwt.sign(key(settings.secret));
  };
  async function rejected(jwt: string, claim: string): Promise<void> {
    await assert.rejects(check(request(`Bearer ${jwt}`)), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError);
      assert.equal(err.wwwAuthenticate, CHALLENGE_INVALID);
      assert.match(err.message, new RegExp(`Token claim "${claim}" is missing or invalid`));
      return true;
    });
  }

  it('accepts a token with the configured issuer and audience', async () => {
    const jwt = await token({ iss: 'https://idp.example/', aud: 'mcp-fleet' });
    assert.equal((await check(request(`Bearer ${jwt}`))).id, 'alice');
    const listed = await token({ iss: 'https://idp.example/', aud: ['other', 'mcp-fleet'] });
    assert.equal((await check(request(`Bearer ${listed}`))).id, 'alice');
  });

  it('signs tokens with the configured issuer and audience', async () => {
    const jwt = await signToken(strict, { sub: 'dave' });
    assert.equal((await check(request(`Bearer ${jwt}`))).id, 'dave');
  });

  it('rejects a wrong or missing issuer', async () => {
    await rejected(await token({ iss: 'https://evil.example/', aud: 'mcp-fleet' }), 'iss');
    await rejected(await token({ aud: 'mcp-fleet' }), 'iss');
  });

  it('rejects a wrong or missing audience', async () => {
    await rejected(await token({ iss: 'https://idp.example/', aud: 'another-api' }), 'aud');
    await rejected(await token({ iss: 'https://idp.example/' }), 'aud');
  });

  it('checks neither claim when unset', async () => {
    const jwt = await token({ iss: 'https://anyone.example/', aud: 'anything' });
    assert.equal((await authenticate(request(`Bearer ${jwt}`))).id, 'alice');
  });

  it('checks only the one configured', async () => {
    const issuerOnly = createAuthenticator({ ...settings, issuer: 'https://idp.example/' });
    const jwt = await token({ iss: 'https://idp.example/', aud: 'anything' });
    assert.equal((await issuerOnly(request(`Bearer ${jwt}`))).id, 'alice');
    const audienceOnly = createAuthenticator({ ...settings, audience: 'mcp-fleet' });
    await assert.rejects(audienceOnly(request(`Bearer ${jwt}`)), /"aud"/);
  });
});
