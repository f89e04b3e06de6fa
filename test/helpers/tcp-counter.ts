import { createServer, connect, type Server, type Socket } from 'node:net';

/** Per-connection traffic seen by a {@link TcpCounter}. */
export interface ConnectionStats {
  /** Client→server writes, each answered before the next: with small pipelined commands, one per round trip. */
  requests: number;
  /** Everything the client sent, as text (RESP), for asserting which commands ran. */
  sent: string;
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
      const stats: ConnectionStats = { requests: 0, sent: '' };
      this.connections.push(stats);
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client).add(upstream);
      let awaitingAnswer = false;
      client.on('data', (chunk) => {
        if (!awaitingAnswer) stats.requests++;
        awaitingAnswer = true;
        stats.sent += chunk.toString('latin1');
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

  /** What the command connections sent since the last reset, RESP flattened to one line (for messages). */
  commandsSent(): string {
    return this.connections
      .filter((c) => !/subscribe/i.test(c.sent))
      .map((c) => c.sent.replace(/\r\n/g, ' '))
      .join(' | ')
      .slice(0, 2000);
  }

  /** Resets the counters (connections stay). */
  reset(): void {
    for (const c of this.connections) {
      c.requests = 0;
      c.sent = /subscribe/i.test(c.sent) ? 'SUBSCRIBE' : '';
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
