import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  /** A URL like `target`, pointing at the proxy instead. */
  url: string;
  /** While down, the proxy accepts connections and closes them at once, like a service that is not there. */
  setUp(up: boolean): void;
  /** Cuts every open connection, like a server restart. */
  dropConnections(): void;
  /**
   * Stops listening (new connections are refused, as when the service's process is gone) and cuts open ones;
   * `true` listens again on the same port.
   */
  setListening(listening: boolean): Promise<void>;
  /**
   * New connections go to `target` from now on; open ones stay where they are, as with a DNS name or a virtual
   * IP moved to another server (a managed Redis's primary endpoint after a failover).
   */
  retarget(target: string): void;
  close(): Promise<void>;
}

/**
 * A loopback TCP proxy in front of a service, so a test can take the service "down" without touching it.
 * Given several targets (replicas), it is a round-robin load balancer: each new connection goes to the next.
 */
export async function startTcpProxy(target: string | readonly string[]): Promise<TcpProxy> {
  let targets = (typeof target === 'string' ? [target] : target).map((url) => new URL(url));
  const targetUrl = targets[0]!;
  let turn = 0;
  const sockets = new Set<Socket>();
  let up = true;
  const server = createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const next = targets[turn++ % targets.length]!;
    const upstream = connect(Number(next.port), next.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const proxyUrl = new URL(targetUrl);
  proxyUrl.hostname = '127.0.0.1';
  proxyUrl.port = String(port);
  const dropConnections = () => {
    for (const socket of sockets) socket.destroy();
  };
  const setListening = async (listening: boolean) => {
    if (listening === server.listening) return;
    if (listening) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    } else {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      dropConnections();
      await closed;
    }
  };
  return {
    url: proxyUrl.toString(),
    setUp: (value) => {
      up = value;
    },
    dropConnections,
    setListening,
    retarget: (next) => {
      targets = [new URL(next)];
    },
    close: () => setListening(false),
  };
}
