import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../../app/config.js';
import { hostPolicy } from '../../app/main.js';

const SECRET = 'x'.repeat(40);

function configError(env: Record<string, string>): string {
  try {
    parseConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.exitCode, 2);
    return err.message;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('configuration', () => {
  it('has embedded defaults for everything', () => {
    assert.deepEqual(parseConfig({}), {
      environment: 'development',
      host: '127.0.0.1',
      port: 9100,
      databaseUrl: undefined,
      redis: undefined,
      redisReplicasOnCreate: 0,
      redisPubSub: 'sharded',
      recoverSessions: false,
      jwt: undefined,
      virustotal: undefined,
      instanceId: undefined,
      sessionTtlSeconds: 3600,
      sessionMaxLifetimeSeconds: 86_400,
      logLevel: 'info',
      allowedHosts: undefined,
      allowedOrigins: undefined,
      metricsEnabled: true,
      singleInstance: false,
    });
  });

  it('reads every variable', () => {
    const c = parseConfig({
      ENVIRONMENT: 'production',
      MCP_SERVER_HOST: '0.0.0.0',
      MCP_SERVER_PORT: '8080',
      DATABASE_URL: 'postgresql://u:p@db:5432/app',
      REDIS_URL: 'rediss://:pw@redis:6380/1',
      JWT_SECRET_KEY: SECRET,
      JWT_ALGORITHM: 'HS512',
      JWT_ISSUER: 'https://idp.example/',
      JWT_AUDIENCE: 'mcp-fleet',
      VIRUSTOTAL_API_KEY: 'vt-key',
      VIRUSTOTAL_BASE_URL: 'http://127.0.0.1:1234/api/v3/',
      INSTANCE_ID: 'pod-a.1',
      SESSION_TTL_SECONDS: '600',
      SESSION_MAX_LIFETIME_SECONDS: '7200',
      LOG_LEVEL: 'debug',
      MCP_ALLOWED_HOSTS: 'a.example:443, b.example:443',
      MCP_ALLOWED_ORIGINS: 'https://a.example',
      METRICS_ENABLED: 'false',
      SINGLE_INSTANCE: 'false',
      RECOVER_SESSIONS: 'true',
    });
    assert.deepEqual(c, {
      environment: 'production',
      host: '0.0.0.0',
      port: 8080,
      databaseUrl: 'postgresql://u:p@db:5432/app',
      redis: 'rediss://:pw@redis:6380/1',
      redisReplicasOnCreate: 0,
      redisPubSub: 'sharded',
      recoverSessions: true,
      jwt: { secret: SECRET, algorithm: 'HS512', issuer: 'https://idp.example/', audience: 'mcp-fleet' },
      virustotal: { apiKey: 'vt-key', baseUrl: 'http://127.0.0.1:1234/api/v3' },
      instanceId: 'pod-a.1',
      sessionTtlSeconds: 600,
      sessionMaxLifetimeSeconds: 7200,
      logLevel: 'debug',
      allowedHosts: ['a.example:443', 'b.example:443'],
      allowedOrigins: ['https://a.example'],
      metricsEnabled: false,
      singleInstance: false,
    });
  });

  it('refuses production without REDIS_URL unless SINGLE_INSTANCE=true says one instance is meant', () => {
    const production = { ENVIRONMENT: 'production', JWT_SECRET_KEY: SECRET };
    assert.throws(
      () => parseConfig(production),
      (err: unknown) =>
        err instanceof ConfigError &&
        /REDIS_URL: required when ENVIRONMENT=production \(or REDIS_SENTINELS, or REDIS_CLUSTER_NODES\): without it every replica keeps its own sessions/.test(
          err.message,
        ) &&
        /SINGLE_INSTANCE=true/.test(err.message),
    );
    const single = parseConfig({ ...production, SINGLE_INSTANCE: 'true' });
    assert.equal(single.redis, undefined);
    assert.equal(single.singleInstance, true);
    assert.equal(parseConfig({ ...production, REDIS_URL: 'redis://r:6379' }).singleInstance, false);
    // Development keeps its zero-setup default.
    assert.equal(parseConfig({}).redis, undefined);
    // A Sentinel or Cluster is as good as a URL.
    assert.equal(parseConfig({ ...production, REDIS_CLUSTER_NODES: 'c:7000' }).singleInstance, false);
  });

  it('treats empty values as unset', () => {
    const c = parseConfig({
      MCP_SERVER_PORT: '',
      VIRUSTOTAL_API_KEY: '',
      JWT_SECRET_KEY: ' ',
      LOG_LEVEL: '',
    });
    assert.equal(c.port, 9100);
    assert.equal(c.virustotal, undefined);
    assert.equal(c.jwt, undefined);
    assert.equal(c.logLevel, 'info');
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{ MCP_SERVER_PORT: 'abc' }, /MCP_SERVER_PORT: expected an integer from 0 to 65535 \(got "abc"\)/],
    [{ MCP_SERVER_PORT: '70000' }, /MCP_SERVER_PORT: expected an integer from 0 to 65535 \(got "70000"\)/],
    [{ MCP_SERVER_PORT: '91.5' }, /MCP_SERVER_PORT: expected an integer/],
    [{ MCP_SERVER_PORT: '-1' }, /MCP_SERVER_PORT: expected an integer/],
    [{ MCP_SERVER_HOST: 'bad host!' }, /MCP_SERVER_HOST: expected a host name or an IP address/],
    [{ JWT_ALGORITHM: 'RS256' }, /JWT_ALGORITHM: expected one of HS256, HS384, HS512 \(got "RS256"\)/],
    [{ JWT_ALGORITHM: 'none' }, /JWT_ALGORITHM: expected one of HS256, HS384, HS512/],
    [{ ENVIRONMENT: 'staging' }, /ENVIRONMENT: expected one of development, production \(got "staging"\)/],
    [{ LOG_LEVEL: 'verbose' }, /LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent/],
    [{ SESSION_TTL_SECONDS: '0' }, /SESSION_TTL_SECONDS: expected an integer from 10 to/],
    [
      { SESSION_TTL_SECONDS: '86401' },
      /SESSION_TTL_SECONDS: expected at most SESSION_MAX_LIFETIME_SECONDS \(86400\).* \(got "86401"\)/,
    ],
    [
      { SESSION_TTL_SECONDS: '3600', SESSION_MAX_LIFETIME_SECONDS: '600' },
      /SESSION_TTL_SECONDS: expected at most SESSION_MAX_LIFETIME_SECONDS \(600\)/,
    ],
    [
      { SESSION_MAX_LIFETIME_SECONDS: '5' },
      /SESSION_MAX_LIFETIME_SECONDS: expected an integer from 10 to 2678400 \(got "5"\)/,
    ],
    [{ SESSION_MAX_LIFETIME_SECONDS: '2678401' }, /SESSION_MAX_LIFETIME_SECONDS: expected an integer/],
    [{ MCP_ALLOWED_HOSTS: ',' }, /MCP_ALLOWED_HOSTS: expected a comma-separated list of at least one value/],
    [{ MCP_ALLOWED_HOSTS: ' , ,' }, /MCP_ALLOWED_HOSTS: expected a comma-separated list/],
    [{ MCP_ALLOWED_ORIGINS: ',' }, /MCP_ALLOWED_ORIGINS: expected a comma-separated list of at least one/],
    [{ JWT_ISSUER: 'https://idp.example/' }, /JWT_ISSUER: only checked on tokens: set JWT_SECRET_KEY too/],
    [{ JWT_AUDIENCE: 'mcp' }, /JWT_AUDIENCE: only checked on tokens: set JWT_SECRET_KEY too/],
    [{ METRICS_ENABLED: 'yes' }, /METRICS_ENABLED: expected true, false, 1 or 0 \(got "yes"\)/],
    [
      { DATABASE_URL: 'mysql://u@h/db' },
      /DATABASE_URL: expected a URL starting with postgres:\/\/ or postgresql:\/\//,
    ],
    [{ REDIS_URL: 'localhost:6379' }, /REDIS_URL: expected a URL starting with redis:\/\/ or rediss:\/\//],
    [{ REDIS_SENTINELS: 'a:26379' }, /REDIS_SENTINEL_NAME: required with REDIS_SENTINELS/],
    [
      { REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' },
      /REDIS_SENTINELS: expected a comma-separated list of host:port/,
    ],
    [{ REDIS_CLUSTER_NODES: 'a:0' }, /REDIS_CLUSTER_NODES: expected a comma-separated list of host:port/],
    [{ REDIS_CLUSTER_NODES: 'a:99999' }, /REDIS_CLUSTER_NODES: expected a comma-separated list of host:port/],
    [{ REDIS_URL: 'redis://r', REDIS_CLUSTER_NODES: 'a:7000' }, /REDIS_URL: set only one of REDIS_URL/],
    [{ REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINEL_NAME: only used with REDIS_SENTINELS/],
    [
      { REDIS_URL: 'redis://r', REDIS_PASSWORD: 'pw' },
      /REDIS_PASSWORD: with REDIS_URL, put the credentials in the URL/,
    ],
    [{ REDIS_URL: 'redis://r', REDIS_TLS: 'true' }, /REDIS_TLS: with REDIS_URL, use a rediss:\/\/ URL/],
    [{ REDIS_REPLICAS_ON_CREATE: '9' }, /REDIS_REPLICAS_ON_CREATE: expected an integer from 0 to 5/],
    [{ REDIS_PUBSUB: 'fast' }, /REDIS_PUBSUB: expected one of sharded, classic/],
    [
      { VIRUSTOTAL_BASE_URL: 'ftp://vt' },
      /VIRUSTOTAL_BASE_URL: expected a URL starting with https:\/\/ or http:\/\//,
    ],
    [{ INSTANCE_ID: 'has space' }, /INSTANCE_ID: expected 1-64 characters/],
    [{ ENVIRONMENT: 'production' }, /JWT_SECRET_KEY: required when ENVIRONMENT=production/],
  ];
  for (const [env, message] of bad) {
    it(`rejects ${JSON.stringify(env)}`, () => {
      assert.match(configError(env), message);
    });
  }

  it('reads a Sentinel and a Cluster configuration', () => {
    const sentinel = parseConfig({
      REDIS_SENTINELS: 'sentinel-0:26379, sentinel-1:26379',
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_SENTINEL_PASSWORD: 'spw',
      REDIS_USERNAME: 'mcp',
      REDIS_PASSWORD: 'pw',
      REDIS_TLS: '1',
      REDIS_REPLICAS_ON_CREATE: '1',
    });
    assert.deepEqual(sentinel.redis, {
      sentinels: [
        { host: 'sentinel-0', port: 26379 },
        { host: 'sentinel-1', port: 26379 },
      ],
      name: 'mymaster',
      username: 'mcp',
      password: 'pw',
      tls: true,
      sentinelPassword: 'spw',
    });
    assert.equal(sentinel.redisReplicasOnCreate, 1);
    const cluster = parseConfig({
      REDIS_CLUSTER_NODES: 'c-0.redis:6379,c-1.redis:6379',
      REDIS_PUBSUB: 'classic',
    });
    assert.deepEqual(cluster.redis, {
      nodes: [
        { host: 'c-0.redis', port: 6379 },
        { host: 'c-1.redis', port: 6379 },
      ],
    });
    assert.equal(cluster.redisPubSub, 'classic');
  });

  it('never echoes Redis passwords', () => {
    const message = configError({
      REDIS_URL: 'redis://r',
      REDIS_PASSWORD: 'hunter3',
      REDIS_SENTINEL_PASSWORD: 'hunter4',
    });
    for (const secret of ['hunter3', 'hunter4']) assert.ok(!message.includes(secret));
  });

  it('accepts an idle TTL up to the maximum lifetime, and a longer lifetime', () => {
    const equal = parseConfig({ SESSION_TTL_SECONDS: '86400' });
    assert.equal(equal.sessionTtlSeconds, 86_400);
    assert.equal(equal.sessionMaxLifetimeSeconds, 86_400);
    const week = parseConfig({ SESSION_TTL_SECONDS: '172800', SESSION_MAX_LIFETIME_SECONDS: '604800' });
    assert.equal(week.sessionTtlSeconds, 172_800);
    assert.equal(week.sessionMaxLifetimeSeconds, 604_800);
  });

  it('treats blank allow-lists as unset and keeps non-empty ones', () => {
    assert.equal(parseConfig({ MCP_ALLOWED_HOSTS: '', MCP_ALLOWED_ORIGINS: ' ' }).allowedHosts, undefined);
    assert.deepEqual(parseConfig({ MCP_ALLOWED_HOSTS: ',proxy:8080,' }).allowedHosts, ['proxy:8080']);
  });

  it('omits issuer and audience when unset', () => {
    assert.deepEqual(parseConfig({ JWT_SECRET_KEY: SECRET, JWT_ISSUER: '', JWT_AUDIENCE: ' ' }).jwt, {
      secret: SECRET,
      algorithm: 'HS256',
    });
  });

  it('lists every bad variable at once', () => {
    const message = configError({ MCP_SERVER_PORT: 'x', LOG_LEVEL: 'loud', JWT_ALGORITHM: 'ES256' });
    assert.match(message, /^Invalid configuration:/);
    assert.match(message, /MCP_SERVER_PORT/);
    assert.match(message, /LOG_LEVEL/);
    assert.match(message, /JWT_ALGORITHM/);
  });

  it('never echoes secret values', () => {
    const message = configError({
      JWT_SECRET_KEY: 'short-secret',
      DATABASE_URL: 'mysql://user:hunter2@db/x',
      REDIS_URL: 'http://:redispw@r',
      VIRUSTOTAL_API_KEY: 'has space',
    });
    assert.match(
      message,
      /JWT_SECRET_KEY: expected a secret of at least 32 characters \(256 bits\) \(value hidden\)/,
    );
    assert.match(message, /VIRUSTOTAL_API_KEY: .*\(value hidden\)/);
    for (const secret of ['short-secret', 'hunter2', 'redispw', 'has space'])
      assert.ok(!message.includes(secret));
  });

  it('loads a .env file; the environment wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'app-config-'));
    try {
      const file = join(dir, '.env');
      writeFileSync(file, 'MCP_SERVER_PORT=9200\nLOG_LEVEL=debug\nINSTANCE_ID=from-file\n# comment\n');
      const c = loadConfig({ LOG_LEVEL: 'warn' }, file);
      assert.equal(c.port, 9200);
      assert.equal(c.logLevel, 'warn');
      assert.equal(c.instanceId, 'from-file');
      assert.equal(loadConfig({}, join(dir, 'missing.env')).port, 9100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Host/Origin policy', () => {
  it('pins loopback hosts and origins to the port when bound to loopback', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1', '127.0.0.2']) {
      assert.deepEqual(hostPolicy({ host, allowedHosts: undefined, allowedOrigins: undefined }, 9100), {
        allowedHosts: ['127.0.0.1:9100', 'localhost:9100', '[::1]:9100'],
        allowedOrigins: ['http://127.0.0.1:9100', 'http://localhost:9100', 'http://[::1]:9100'],
      });
    }
  });

  it('checks nothing on other interfaces unless lists are configured', () => {
    assert.deepEqual(
      hostPolicy({ host: '0.0.0.0', allowedHosts: undefined, allowedOrigins: undefined }, 80),
      {
        allowedHosts: [],
        allowedOrigins: [],
      },
    );
    assert.deepEqual(
      hostPolicy({ host: '127.0.0.1', allowedHosts: ['proxy:8080'], allowedOrigins: [] }, 80),
      {
        allowedHosts: ['proxy:8080'],
        allowedOrigins: [],
      },
    );
  });
});
