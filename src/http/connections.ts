import type { Server } from 'node:http';

/**
 * Resolves once `server` (its listener closed) has no connection left, or at `deadline`: idle
 * kept-alive connections are closed as they become idle, busy ones finish their request first.
 */
export function connectionsGone(server: Server, deadline: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let poll: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(poll);
      server.off('close', done);
      resolve();
    };
    // 'close' comes when the last connection of a closed server ends; the count covers a server
    // that closed before we looked. Connections that end idle (a stream the drain ended) are closed
    // on the next look.
    server.once('close', done);
    const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
    timer.unref();
    const look = () => {
      server.getConnections((err, n) => {
        if (err || n === 0) return done();
        server.closeIdleConnections();
        poll = setTimeout(look, 50);
        poll.unref();
      });
    };
    look();
  });
}
