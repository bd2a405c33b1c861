import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../logger.ts';

export interface HttpDrain {
  /** Responses not yet written say `connection: close`, so clients stop reusing their sockets. */
  answerWithClose(): void;
  /**
   * Stops accepting, lets every request already read finish, then resolves once all connections are closed;
   * after `graceMs` the remaining ones are cut (and the log says so). Resolves false when it had to cut.
   */
  close(graceMs: number): Promise<boolean>;
}

/**
 * A graceful close that never loses a request it read. Apollo's drain plugin ends (FIN) every socket that has
 * not yet emitted a request; Node keeps reading a half-closed socket, so a request arriving on one is still
 * run while the client, seeing the FIN, has already failed it. Here a connection is only ever closed while its
 * parser is between requests (`closeIdleConnections`): what it had not read is refused at the connection,
 * what it read is answered.
 */
export function trackHttpDrain(server: Server, logger: Logger): HttpDrain {
  const sockets = new Set<Socket>();
  const unanswered = new Set<ServerResponse>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    unanswered.add(res);
    res.once('close', () => unanswered.delete(res));
  });
  return {
    answerWithClose: () => {
      for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
    },
    close: async (graceMs) => {
      let graceful = true;
      // Also closes the connections idle right now (Node 19+); not listening is fine.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive sockets fall idle as their last answer is written.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const cut = setTimeout(() => {
        graceful = false;
        logger.warn({ graceMs, connections: sockets.size }, 'drain grace period over: cut the requests still in flight');
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      await closed;
      clearInterval(sweep);
      clearTimeout(cut);
      return graceful;
    },
  };
}
