import { createServer, connect, type Server, type Socket } from 'node:net';

/** Per-connection traffic seen by a {@link TcpCounter}. */
export interface ConnectionStats {
  /** Client→server writes, each answered before the next: with small pipelined commands, one per round trip. */
  requests: number;
  /** Everything the client sent, as text (RESP), for asserting which commands ran. */
  sent: string;
  /** What each burst carried (RESP text), in order. */
  bursts: string[];
}

/**
 * A TCP pass-through in front of a server that counts client→server bursts per connection. A burst
 * is the data a client writes before the server's next answer, so a pipeline counts once.
 */
export class TcpCounter {
  readonly connections: ConnectionStats[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const stats: ConnectionStats = { requests: 0, sent: '', bursts: [] };
      this.connections.push(stats);
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client).add(upstream);
      let awaitingAnswer = false;
      client.on('data', (chunk) => {
        if (!awaitingAnswer) {
          stats.requests++;
          stats.bursts.push('');
        }
        awaitingAnswer = true;
        stats.sent += chunk.toString('latin1');
        stats.bursts[stats.bursts.length - 1] += chunk.toString('latin1');
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        awaitingAnswer = false;
        client.write(chunk);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Sum of bursts over all connections that did not SUBSCRIBE (i.e. command connections). */
  commandRequests(): number {
    return this.connections.filter((c) => !/subscribe/i.test(c.sent)).reduce((n, c) => n + c.requests, 0);
  }

  /**
   * What the command connections sent since the last reset, RESP flattened to one line: the first
   * `limit` characters (enough for an assertion message; `Infinity` for all of it).
   */
  commandsSent(limit = 2000): string {
    return this.connections
      .filter((c) => !/subscribe/i.test(c.sent))
      .map((c) => c.sent.replace(/\r\n/g, ' '))
      .join(' | ')
      .slice(0, limit);
  }

  /**
   * Round trips of the command connection since the last reset, not counting bursts that carried
   * nothing but `PING`s (the sentinels of a test: a client that sends one after its other commands on
   * the same connection has had all of them counted once it is answered). A `PING` that went with
   * other commands does not hide them: that burst counts. Throws when more than one command
   * connection sent anything since the reset (a sentinel orders only its own) or no `PING` was sent.
   */
  roundTripsExceptPings(): number {
    const commands = this.connections.filter((c) => !/subscribe/i.test(c.sent) && c.bursts.length > 0);
    if (commands.length !== 1) {
      throw new Error(`expected one command connection since the reset, got ${commands.length}`);
    }
    const pings = /\*1\r\n\$4\r\nping\r\n/gi;
    const bursts = commands[0]!.bursts;
    if (!bursts.some((b) => b.replace(pings, '') !== b)) throw new Error('no PING was sent');
    return bursts.filter((b) => b.replace(pings, '') !== '').length;
  }

  /** Resets the counters (connections stay). */
  reset(): void {
    for (const c of this.connections) {
      c.requests = 0;
      c.sent = /subscribe/i.test(c.sent) ? 'SUBSCRIBE' : '';
      c.bursts = [];
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
