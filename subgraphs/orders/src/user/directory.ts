import { IDENTITY_HEADER, publicError, signIdentity } from '@fed/platform';
import { ErrorCode } from '../errors.ts';

/**
 * Answers "does this user exist?" for placeOrder. Orders never reads the users database; it asks the users
 * subgraph, the owner of that fact, through its federation entity endpoint.
 */
export interface UserDirectory {
  exists(userId: number): Promise<boolean>;
}

const ENTITY_QUERY = 'query ($representations: [_Any!]!) { _entities(representations: $representations) { ... on User { id } } }';

export interface HttpUserDirectoryOptions {
  url: string;
  /** The secret users holds for orders: this call is signed as the service `orders`, acting for no user. */
  secret: string;
  timeoutMs?: number;
}

export function createHttpUserDirectory({ url, secret, timeoutMs = 2_000 }: HttpUserDirectoryOptions): UserDirectory {
  const unavailable = () =>
    publicError(ErrorCode.SubgraphUnavailable, 'The users service is unavailable; nothing was written. Try again.');
  return {
    async exists(userId) {
      let body: { data?: { _entities?: ({ id: string } | null)[] } | null; errors?: unknown[] };
      const payload = JSON.stringify({
        query: ENTITY_QUERY,
        variables: { representations: [{ __typename: 'User', id: String(userId) }] },
      });
      const identity = signIdentity({ secret, caller: 'orders', audience: 'users', viewer: null, body: payload });
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity },
          body: payload,
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!response.ok) throw unavailable();
        body = (await response.json()) as typeof body;
      } catch {
        throw unavailable();
      }
      // A null entity only means "no such user" when the users subgraph reports no error alongside it.
      const entities = body.data?._entities;
      if (!entities || entities.length !== 1 || (body.errors?.length ?? 0) > 0) throw unavailable();
      return entities[0] != null;
    },
  };
}
