import { IDENTITY_HEADER, signIdentity } from '@fed/platform';

/** Every user id that exists now, for building the projection on a new deployment. */
export type UserSnapshot = () => Promise<number[]>;

const PAGE = 'query ($after: String) { users(first: 100, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }';

interface Page {
  data?: { users?: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } | null;
  errors?: unknown[];
}

export interface HttpUserSnapshotOptions {
  url: string;
  /** The secret users holds for orders: these calls are signed as the service `orders`, acting for no user. */
  secret: string;
  timeoutMs?: number;
}

/**
 * Pages through the users subgraph, the owner of the fact. Only a deployment whose projection was never built
 * calls it (and seeding writes the projection itself); after that, orders learns about users from the stream.
 */
export function createHttpUserSnapshot({ url, secret, timeoutMs = 10_000 }: HttpUserSnapshotOptions): UserSnapshot {
  return async () => {
    const ids: number[] = [];
    let after: string | null = null;
    for (;;) {
      const payload = JSON.stringify({ query: PAGE, variables: { after } });
      // From the primary: a user created a moment ago must be in the snapshot, whatever a replica has caught up to.
      const identity = signIdentity({ secret, caller: 'orders', audience: 'users', viewer: null, body: payload, readPrimary: true });
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity },
        body: payload,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = (await response.json()) as Page;
      const users = body.data?.users;
      if (!response.ok || !users || (body.errors?.length ?? 0) > 0) throw new Error(`users snapshot failed with HTTP ${response.status}`);
      ids.push(...users.edges.map((edge) => Number(edge.node.id)));
      if (!users.pageInfo.hasNextPage) return ids;
      after = users.pageInfo.endCursor;
    }
  };
}
