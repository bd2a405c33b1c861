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

/**
 * What each client holds on this replica: its graphql-ws sockets and its SSE streams, and the subscriptions
 * running on them. One registry serves both transports, so a client cannot get twice the budget by using both.
 * A socket counts against the socket caps; an SSE stream is one subscription on a connection of its own and
 * counts against the subscription and document caps only (browsers already bound connections per origin).
 */
export function createSocketRegistry(limits: SubscriptionLimits) {
  const members = new Map<string, Set<Member>>();
  const clientOf = new Map<Member, string>();
  const running = new WeakMap<Member, SocketLoad>();
  const streams = new WeakSet<Member>();
  const isViewer = (client: string) => client.startsWith('sub:');
  const socketsOf = (client: string) => {
    let count = 0;
    for (const member of members.get(client) ?? []) if (!streams.has(member)) count += 1;
    return count;
  };

  const leave = (member: Member) => {
    const client = clientOf.get(member);
    if (client === undefined) return;
    clientOf.delete(member);
    const held = members.get(client);
    held?.delete(member);
    if (held?.size === 0) members.delete(client);
  };
  const enter = (member: Member, client: string) => {
    leave(member);
    const held = members.get(client) ?? new Set<Member>();
    held.add(member);
    members.set(client, held);
    clientOf.set(member, client);
  };
  const join = (socket: Member, client: string): boolean => {
    if (socketsOf(client) >= (isViewer(client) ? limits.socketsPerViewer : limits.socketsPerAddress)) return false;
    enter(socket, client);
    return true;
  };
  /** Why `client` may not hold `adding` more subscriptions and `bytes` more query text, if it may not. */
  const clientRefusal = (client: string, adding: number, bytes: number): string | undefined => {
    let total = adding;
    for (const member of members.get(client) ?? []) {
      total += running.get(member)?.count() ?? 0;
      bytes += running.get(member)?.bytes() ?? 0;
    }
    const who = isViewer(client) ? 'user' : 'address';
    const cap = isViewer(client) ? limits.subscriptionsPerViewer : limits.subscriptionsPerAddress;
    if (total > cap) return `At most ${cap} subscriptions at once per ${who} on this server`;
    if (bytes > limits.documentBytesPerClient) return `The subscriptions of one ${who} may hold at most ${limits.documentBytesPerClient} bytes of documents on this server`;
    return undefined;
  };

  return {
    /** A new socket counts against its address until it signs in; false when the address already has its fill. */
    join,
    /** The socket signed in as `client`: it now counts there (false, and it stays where it was, when that is full). */
    move: join,
    leave,
    clientOf: (member: Member) => clientOf.get(member),
    /** How to measure what runs on a socket (read when needed, never kept as counters that could drift). */
    track(member: Member, load: SocketLoad) {
      running.set(member, load);
    },
    /**
     * Why the subscription being opened on `socket` (`bytes` of query text) is refused, if it is. Counts include
     * it already (graphql-ws reserves its id first), its bytes not yet; neither includes the one it replaces,
     * which is ending.
     */
    refusal(socket: Member, opening: { bytes: number; replacing?: { bytes: number } }): string | undefined {
      const client = clientOf.get(socket);
      if (client === undefined) return undefined;
      const replacing = opening.replacing ? 1 : 0;
      if ((running.get(socket)?.count() ?? 0) - replacing > limits.subscriptionsPerSocket) return `At most ${limits.subscriptionsPerSocket} subscriptions per connection`;
      return clientRefusal(client, -replacing, opening.bytes - (opening.replacing?.bytes ?? 0));
    },
    /**
     * An SSE stream of one subscription (`bytes` of query text) for `client`: it is counted from now on, until
     * `leave(stream)`, unless it is refused (the reason is returned). Checked and counted in one step, so
     * streams that arrive together cannot all pass the same check.
     */
    openStream(stream: Member, client: string, bytes: number): string | undefined {
      const refused = clientRefusal(client, 1, bytes);
      if (refused) return refused;
      streams.add(stream);
      enter(stream, client);
      running.set(stream, { count: () => 1, bytes: () => bytes });
      return undefined;
    },
  };
}

/** A graphql-ws socket, or an SSE stream. */
type Member = object;

export interface SocketLoad {
  count(): number;
  bytes(): number;
}

export type SocketRegistry = ReturnType<typeof createSocketRegistry>;
