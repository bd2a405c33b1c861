import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A round-robin TCP load balancer in front of replicas, as a Service or nginx is in front of pods. */
export interface Balancer {
  url: string;
  close(): Promise<void>;
}

/**
 * Each new connection goes to the next target; a target that refuses the connection (a replica that is gone) is
 * skipped for the next, as nginx's `proxy_next_upstream error` does. Connections already open to a replica die with
 * it. Nothing is read from the client until a target has accepted, so a skipped attempt loses no bytes.
 */
export async function startBalancer(targets: readonly string[]): Promise<Balancer> {
  const upstreams = targets.map((target) => new URL(target));
  let turn = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    client.on('error', () => client.destroy());
    const first = turn++;
    const attempt = (tried: number) => {
      if (tried === upstreams.length || client.destroyed) {
        client.destroy();
        return;
      }
      const target = upstreams[(first + tried) % upstreams.length]!;
      const upstream = connect(Number(target.port), target.hostname);
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        track(upstream);
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (connected) client.destroy();
        else attempt(tried + 1);
      });
      upstream.on('close', () => connected && client.destroy());
      client.on('close', () => upstream.destroy());
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(upstreams[0]!.toString());
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
