import { createClient, type Client, type FormattedExecutionResult, type Sink } from 'graphql-ws';
import WebSocket from 'ws';
import { IDENTITY_HEADER, signIdentity } from '../identity/internal-token.ts';
import type { Viewer } from '../identity/viewer.ts';
import { SUBSCRIPTION_CONNECTION_BODY, subscriptionBody } from './subgraph-ws.ts';

export interface SubgraphSubscriptionClientOptions {
  /** The subgraph's GraphQL URL (http or ws); subscriptions go to the same path over ws. */
  url: string;
  /** The secret the subgraph holds for this caller. */
  secret: string;
  caller: string;
  /** The subgraph's name. */
  audience: string;
  /** Client keep-alive: a silent connection is closed after this long. */
  keepAliveMs?: number;
}

/**
 * One graphql-ws connection to a subgraph, opened on first use and shared by every subscription to it. Each
 * subscription is signed with the viewer it acts for. Nothing is retried here: a signature lives 30 s, so a
 * resubscription must be signed afresh by whoever owns it (the sink's error or complete says when).
 */
export function createSubgraphSubscriptionClient(options: SubgraphSubscriptionClientOptions) {
  const { secret, caller, audience } = options;
  const url = options.url.replace(/^http/, 'ws');
  const client: Client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
    keepAlive: options.keepAliveMs ?? 10_000,
    connectionParams: () => ({ [IDENTITY_HEADER]: signIdentity({ secret, caller, audience, viewer: null, body: SUBSCRIPTION_CONNECTION_BODY }) }),
  });
  return {
    /** Starts a subscription; the returned function ends it (and the connection, once it is the last). */
    subscribe(query: string, variables: Record<string, unknown> | undefined, viewer: Viewer | null, sink: Sink<FormattedExecutionResult>): () => void {
      // Each event announces a commit that a read replica may not have applied yet: the fields the subgraph
      // resolves for it (the event's user) are read from the primary.
      const identity = signIdentity({ secret, caller, audience, viewer, body: subscriptionBody(query, variables), readPrimary: true });
      return client.subscribe({ query, variables, extensions: { [IDENTITY_HEADER]: identity } }, sink);
    },
    dispose: () => client.dispose(),
  };
}

export type SubgraphSubscriptionClient = ReturnType<typeof createSubgraphSubscriptionClient>;
