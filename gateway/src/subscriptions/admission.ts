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
}

export const DEFAULT_SUBSCRIPTION_LIMITS: SubscriptionLimits = {
  subscriptionsPerSocket: 200,
  // Browser tabs and devices of one user.
  socketsPerViewer: 16,
  subscriptionsPerViewer: 200,
  socketsPerAddress: 32,
  subscriptionsPerAddress: 200,
};

/** Closes a socket refused by the rate limit or a socket cap (graphql-ws clients do not retry on it by themselves). */
export const TOO_MANY_CLOSE_CODE = 4429;

export const viewerClient = (userId: string) => `sub:${userId}`;
export const addressClient = (address: string) => `addr:${address}`;

/** The sockets of each client on this replica, and the subscriptions running on them. */
export function createSocketRegistry(limits: SubscriptionLimits) {
  const sockets = new Map<string, Set<WebSocket>>();
  const clientOf = new Map<WebSocket, string>();
  const running = new WeakMap<WebSocket, () => number>();
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
    /** How to count the subscriptions on a socket (read when needed, never kept as a counter that could drift). */
    track(socket: WebSocket, count: () => number) {
      running.set(socket, count);
    },
    /**
     * Why the subscription being opened on `socket` is refused, if it is: the counts include it already (graphql-ws
     * reserves its id first), and not one it replaces (`replacing`), which is ending.
     */
    refusal(socket: WebSocket, replacing: number): string | undefined {
      const client = clientOf.get(socket);
      if (client === undefined) return undefined;
      if ((running.get(socket)?.() ?? 0) - replacing > limits.subscriptionsPerSocket) return `At most ${limits.subscriptionsPerSocket} subscriptions per connection`;
      let total = -replacing;
      for (const member of sockets.get(client) ?? []) total += running.get(member)?.() ?? 0;
      const cap = isViewer(client) ? limits.subscriptionsPerViewer : limits.subscriptionsPerAddress;
      if (total > cap) return `At most ${cap} subscriptions at once per ${isViewer(client) ? 'user' : 'address'} on this server`;
      return undefined;
    },
  };
}

export type SocketRegistry = ReturnType<typeof createSocketRegistry>;
