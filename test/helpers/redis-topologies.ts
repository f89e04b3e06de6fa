// Throwaway Redis topologies for the tests: a 3-master, 3-replica Cluster and a primary with two
// replicas watched by three sentinels, on free ports, no persistence. Both can lose a master on
// purpose (SIGKILL) and report when the failover completed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { assertRedisInstalled } from './redis-server.js';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

const until = (what: string, check: () => boolean | Promise<boolean>, ms = 20_000) =>
  waitFor(what, check, ms, 100);

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function assertRedisCliInstalled(): void {
  const r = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      'redis-cli is required by the Cluster tests: apt-get install redis-tools (or redis-server)',
    );
  }
}

/** One redis-server process of a topology. */
class Node {
  proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    private readonly args: string[],
  ) {}

  get alive(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(): Promise<void> {
    const proc = spawn('redis-server', this.args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.proc = proc;
    children.add(proc);
    proc.once('exit', () => children.delete(proc));
    await until(`redis on ${this.port}`, async () => {
      const c = new Redis(this.port, '127.0.0.1', {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      c.on('error', () => {});
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } finally {
        c.disconnect();
      }
    });
  }

  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || !this.alive) return;
    p.kill('SIGCONT');
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** A short-lived direct connection (the caller disconnects it). */
  client(): Redis {
    const c = new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null });
    c.on('error', () => {});
    return c;
  }
}

const base = (port: number, dir: string) => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  dir,
  '--loglevel',
  'warning',
];

/** A 3-master, 3-replica Redis Cluster (`--cluster-enabled yes`, `redis-cli --cluster create`). */
export class TestRedisCluster {
  private constructor(
    readonly nodes: Node[],
    private readonly dir: string,
  ) {}

  /** Environment of a test instance (see test/fixtures/redis-env.ts). */
  get env(): Record<string, string> {
    return { REDIS_CLUSTER_NODES: this.seeds.map((s) => `${s.host}:${s.port}`).join(',') };
  }

  /** Seed nodes for a client. */
  get seeds(): Array<{ host: string; port: number }> {
    return this.nodes.filter((n) => n.alive).map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  static async start(nodeTimeoutMs = 2000): Promise<TestRedisCluster> {
    assertRedisInstalled();
    assertRedisCliInstalled();
    const dir = mkdtempSync(join(tmpdir(), 'mcp-fleet-cluster-'));
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    const nodes = ports.map(
      (port) =>
        new Node(port, [
          ...base(port, dir),
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          // A replica takes over however long it was disconnected (tests kill masters on purpose).
          '--cluster-replica-validity-factor',
          '0',
        ]),
    );
    const cluster = new TestRedisCluster(nodes, dir);
    await Promise.all(nodes.map((n) => n.start()));
    const r = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) {
      await cluster.stop();
      throw new Error(`redis-cli --cluster create failed: ${r.stdout}\n${r.stderr}`);
    }
    await cluster.waitHealthy();
    await cluster.waitReplicated();
    return cluster;
  }

  /** Until every live node reports `cluster_state:ok` and all 16384 slots are served by live masters. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await until(
      'cluster_state:ok on every node',
      async () => {
        for (const n of this.nodes.filter((x) => x.alive)) {
          const c = n.client();
          try {
            const info = await c.cluster('INFO');
            if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
          } finally {
            c.disconnect();
          }
        }
        return true;
      },
      timeoutMs,
    );
  }

  /** Until every master has a replica in sync (`WAIT 1` would succeed on every shard). */
  async waitReplicated(timeoutMs = 30_000): Promise<void> {
    await until(
      'a replica in sync on every master',
      async () => {
        for (const port of await this.masters()) {
          const c = this.nodes.find((n) => n.port === port)!.client();
          try {
            if (!/connected_slaves:[1-9][\s\S]*state=online/.test(await c.info('replication'))) return false;
          } finally {
            c.disconnect();
          }
        }
        return true;
      },
      timeoutMs,
    );
  }

  /** A client of the whole cluster (the caller disconnects it). */
  client(): Cluster {
    const c = new Cluster(this.seeds, { redisOptions: { maxRetriesPerRequest: 1 } });
    c.on('error', () => {});
    return c;
  }

  /** The port of the master currently serving `key`'s slot. */
  async masterOf(key: string): Promise<number> {
    const c = this.nodes.find((n) => n.alive)!.client();
    try {
      return await this.masterOfSlot((await c.cluster('KEYSLOT', key)) as number);
    } finally {
      c.disconnect();
    }
  }

  /** The port of the master currently serving `slot`. */
  async masterOfSlot(slot: number): Promise<number> {
    const c = this.nodes.find((n) => n.alive)!.client();
    try {
      const slots = (await c.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no master serves slot ${slot}`);
      return range[2][1];
    } finally {
      c.disconnect();
    }
  }

  /** Kills the master serving `key` (SIGKILL) and resolves once its replica took over. */
  async killMasterOf(key: string): Promise<{ port: number; failoverMs: number }> {
    const port = await this.masterOf(key);
    const node = this.nodes.find((n) => n.port === port)!;
    const t0 = Date.now();
    await node.kill();
    // Until a replica serves the slot (the live nodes notice after cluster-node-timeout), and all is ok.
    await until('a replica serving the slot', async () => (await this.masterOf(key)) !== port, 30_000);
    await this.waitHealthy();
    return { port, failoverMs: Date.now() - t0 };
  }

  /** Restarts a killed node (it rejoins as a replica, from its nodes.conf) and waits for a healthy cluster. */
  async revive(port: number): Promise<void> {
    const node = this.nodes.find((n) => n.port === port)!;
    await node.start();
    await until(
      'the revived node to join',
      async () => {
        const c = node.client();
        try {
          return /cluster_state:ok/.test(await c.cluster('INFO'));
        } finally {
          c.disconnect();
        }
      },
      30_000,
    );
    await this.waitHealthy();
    await this.waitReplicated();
  }

  /** Moves `slots` slots from the master on `from` to the one on `to` (`redis-cli --cluster reshard`). */
  reshard(from: number, to: number, slots: number): Promise<void> {
    const ids = (port: number) => {
      const r = spawnSync('redis-cli', ['-p', String(port), 'CLUSTER', 'MYID'], { encoding: 'utf8' });
      return r.stdout.trim();
    };
    const args = [
      '--cluster',
      'reshard',
      `127.0.0.1:${from}`,
      '--cluster-from',
      ids(from),
      '--cluster-to',
      ids(to),
      '--cluster-slots',
      String(slots),
      '--cluster-yes',
      '--cluster-pipeline',
      '50',
    ];
    return new Promise((resolve, reject) => {
      const p = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`reshard failed (${code}): ${out.slice(-2000)}`)),
      );
    });
  }

  /** Ports of the live masters. */
  async masters(): Promise<number[]> {
    const c = this.nodes.find((n) => n.alive)!.client();
    try {
      const slots = (await c.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      return [...new Set(slots.map((s) => s[2][1]))];
    } finally {
      c.disconnect();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A primary, two replicas and three sentinels (quorum 2), master name `mymaster`. */
export class TestRedisSentinel {
  readonly name = 'mymaster';
  private constructor(
    readonly data: Node[],
    readonly sentinels: Node[],
    private readonly dir: string,
  ) {}

  /** Environment of a test instance (see test/fixtures/redis-env.ts). */
  get env(): Record<string, string> {
    return {
      REDIS_SENTINELS: this.sentinelAddresses.map((s) => `${s.host}:${s.port}`).join(','),
      REDIS_SENTINEL_NAME: this.name,
    };
  }

  /** The sentinels, for a client's `sentinels` option. */
  get sentinelAddresses(): Array<{ host: string; port: number }> {
    return this.sentinels.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  static async start(downAfterMs = 1000): Promise<TestRedisSentinel> {
    assertRedisInstalled();
    const dir = mkdtempSync(join(tmpdir(), 'mcp-fleet-sentinel-'));
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    const [primaryPort] = ports;
    const data = ports
      .slice(0, 3)
      .map(
        (port, i) =>
          new Node(port, [
            ...base(port, dir),
            ...(i === 0 ? [] : ['--replicaof', '127.0.0.1', String(primaryPort)]),
            '--replica-announce-ip',
            '127.0.0.1',
          ]),
      );
    await Promise.all(data.map((n) => n.start()));
    const sentinels = ports.slice(3).map((port) => {
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor mymaster 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds mymaster ${downAfterMs}`,
          'sentinel failover-timeout mymaster 5000',
          'sentinel parallel-syncs mymaster 2',
          '',
        ].join('\n'),
      );
      return new Node(port, [conf, '--sentinel']);
    });
    await Promise.all(sentinels.map((n) => n.start()));
    const t = new TestRedisSentinel(data, sentinels, dir);
    // Both replicas finished their first sync (a WAIT 1 on create could fail before that), and
    // every sentinel knows both of them (and each other) before a test may kill the primary.
    await until('2 replicas online', async () => {
      const c = data[0]!.client();
      try {
        return ((await c.info('replication')).match(/state=online/g) ?? []).length === 2;
      } finally {
        c.disconnect();
      }
    });
    await until('sentinels see 2 replicas', async () => {
      for (const s of sentinels) {
        const c = s.client();
        try {
          const info = (await c.call('SENTINEL', 'MASTER', 'mymaster')) as string[];
          const m = new Map<string, string>();
          for (let i = 0; i + 1 < info.length; i += 2) m.set(info[i]!, info[i + 1]!);
          if (m.get('num-slaves') !== '2' || Number(m.get('num-other-sentinels')) < 2) return false;
        } finally {
          c.disconnect();
        }
      }
      return true;
    });
    return t;
  }

  /** The port of the current primary, as the sentinels say. */
  async primaryPort(): Promise<number> {
    const c = this.sentinels.find((s) => s.alive)!.client();
    try {
      const [, port] = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) as [string, string];
      return Number(port);
    } finally {
      c.disconnect();
    }
  }

  /** A client through the sentinels (the caller disconnects it). */
  client(): Redis {
    const c = new Redis({ sentinels: this.sentinelAddresses, name: this.name, maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    return c;
  }

  /** Kills the primary (SIGKILL) and resolves once the sentinels promoted a replica. */
  async killPrimary(): Promise<{ port: number; failoverMs: number }> {
    const port = await this.primaryPort();
    const t0 = Date.now();
    await this.data.find((n) => n.port === port)!.kill();
    await until(
      'a new primary',
      async () => {
        const now = await this.primaryPort();
        if (now === port) return false;
        const c = this.data.find((n) => n.port === now)!.client();
        try {
          return /role:master/.test(await c.info('replication'));
        } finally {
          c.disconnect();
        }
      },
      30_000,
    );
    return { port, failoverMs: Date.now() - t0 };
  }

  /** Restarts a killed server; the sentinels make it a replica of the current primary. */
  async revive(port: number): Promise<void> {
    await this.data.find((n) => n.port === port)!.start();
    await until(
      'the revived server to replicate',
      async () => {
        const c = this.data.find((n) => n.port === port)!.client();
        try {
          return /role:slave[\s\S]*master_link_status:up/.test(await c.info('replication'));
        } finally {
          c.disconnect();
        }
      },
      30_000,
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.data].map((n) => n.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
