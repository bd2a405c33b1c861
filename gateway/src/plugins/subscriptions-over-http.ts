import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../errors/codes.ts';

/**
 * @apollo/gateway plans subscriptions but refuses to execute them, which over HTTP surfaces as a 500. Answer
 * with a clear 400 before execution instead: subscriptions belong on a stream (a request that accepts
 * `text/event-stream` or Apollo's multipart subscriptions, served before Apollo sees it) or a WebSocket.
 */
export function rejectSubscriptionsOverHttp(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation !== 'subscription') return;
          throw new GraphQLError(
            'Subscriptions are served as server-sent events (send `Accept: text/event-stream`), over Apollo\'s multipart protocol (`Accept: multipart/mixed;subscriptionSpec=1.0`) or over a graphql-ws WebSocket, not as plain HTTP requests.',
            {
              extensions: { code: ErrorCode.SubscriptionOverHttp, http: { status: 400 } },
            },
          );
        },
      };
    },
  };
}
