import type { WebSocket } from 'ws';

/**
 * What one client may hold on one gateway replica at once. A client is its verified `sub` once its
 * `connection_init` carried a valid token, else its address (IPv6 by /64), exactly as the rate limit keys it:
 * the address caps are for anonymous sockets and sockets that have not signed in yet, so many users behind one
 * NAT are not refused for each other. Counted per replica (sockets are where they are; a shared count would need
 * leases that outlive a crashed replica): N replicas allow N times as much, and the shared rate limit bounds how
 * fast anyone gets there.
 */
export interface SubscriptionLimits {
  subscriptionsPerSocket: number;
  socketsPerViewer: number;
  subscriptionsPerViewer: number;
  socketsPerAddress: number;
  subscriptionsPerAddress: number;
  /**
   * Query text the running subscriptions of one client may hold, in bytes: each keeps its document (and the
   * gateway a printed copy) while it runs, so without it a user could hold their subscription cap times the
   * largest message.
   */
  documentBytesPerClient: number;
}

export const DEFAULT_SUBSCRIPTION_LIMITS: SubscriptionLimits = {
  subscriptionsPerSocket: 200,
  // Browser tabs and devices of one user.
  socketsPerViewer: 16,
  subscriptionsPerViewer: 200,
  socketsPerAddress: 32,
  subscriptionsPerAddress: 200,
  documentBytesPerClient: 2 * 1024 * 1024,
};

/** Closes a socket refused by the rate limit or a socket cap (graphql-ws clients do not retry on it by themselves). */
export const TOO_MANY_CLOSE_CODE = 4429;

export const viewerClient = (userId: string) => `sub:${userId}`;
export const addressClient = (address: string) => `addr:${address}`;

/** The sockets of each client on this replica, and the subscriptions running on them. */
export function createSocketRegistry(limits: SubscriptionLimits) {
  const sockets = new Map<string, Set<WebSocket>>();
  const clientOf = new Map<WebSocket, string>();
  const running = new WeakMap<WebSocket, SocketLoad>();
  const isViewer = (client: string) => client.startsWith('sub:');

  const leave = (socket: WebSocket) => {
    const client = clientOf.get(socket);
    if (client === undefined) return;
    clientOf.delete(socket);
    const members = sockets.get(client);
    members?.delete(socket);
    if (members?.size === 0) sockets.delete(client);
  };
  const join = (socket: WebSocket, client: string): boolean => {
    const members = sockets.get(client) ?? new Set<WebSocket>();
    if (members.size >= (isViewer(client) ? limits.socketsPerViewer : limits.socketsPerAddress)) return false;
    leave(socket);
    members.add(socket);
    sockets.set(client, members);
    clientOf.set(socket, client);
    return true;
  };

  return {
    /** A new socket counts against its address until it signs in; false when the address already has its fill. */
    join,
    /** The socket signed in as `client`: it now counts there (false, and it stays where it was, when that is full). */
    move: join,
    leave,
    clientOf: (socket: WebSocket) => clientOf.get(socket),
    /** How to measure what runs on a socket (read when needed, never kept as counters that could drift). */
    track(socket: WebSocket, load: SocketLoad) {
      running.set(socket, load);
    },
    /**
     * Why the subscription being opened on `socket` (`bytes` of query text) is refused, if it is. Counts include
     * it already (graphql-ws reserves its id first), its bytes not yet; neither includes the one it replaces,
     * which is ending.
     */
    refusal(socket: WebSocket, opening: { bytes: number; replacing?: { bytes: number } }): string | undefined {
      const client = clientOf.get(socket);
      if (client === undefined) return undefined;
      const replacing = opening.replacing ? 1 : 0;
      if ((running.get(socket)?.count() ?? 0) - replacing > limits.subscriptionsPerSocket) return `At most ${limits.subscriptionsPerSocket} subscriptions per connection`;
      let total = -replacing;
      let bytes = opening.bytes - (opening.replacing?.bytes ?? 0);
      for (const member of sockets.get(client) ?? []) {
        total += running.get(member)?.count() ?? 0;
        bytes += running.get(member)?.bytes() ?? 0;
      }
      const who = isViewer(client) ? 'user' : 'address';
      const cap = isViewer(client) ? limits.subscriptionsPerViewer : limits.subscriptionsPerAddress;
      if (total > cap) return `At most ${cap} subscriptions at once per ${who} on this server`;
      if (bytes > limits.documentBytesPerClient) return `The subscriptions of one ${who} may hold at most ${limits.documentBytesPerClient} bytes of documents on this server`;
      return undefined;
    },
  };
}

export interface SocketLoad {
  count(): number;
  bytes(): number;
}

export type SocketRegistry = ReturnType<typeof createSocketRegistry>;
