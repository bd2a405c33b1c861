import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { ErrorCode } from '../errors/codes.ts';
import { isLive } from './directive.ts';

/**
 * A live query keeps answering, which a plain HTTP response cannot: it is refused with a 400 that says where it
 * is served (or that it is not). The transport that serves it runs each answer as a plain query, without the
 * directive, so it never reaches this refusal.
 */
export function rejectLiveQueriesOverHttp(served: boolean): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, request }) {
          if (!isLive(operation, request.variables)) return;
          const message = served
            ? 'Live queries are served over a graphql-ws WebSocket or as server-sent events (send `Accept: text/event-stream`), not as plain HTTP requests.'
            : 'Live queries are not enabled on this server.';
          throw new GraphQLError(message, {
            extensions: { code: ErrorCode.BadRequest, http: { status: 400 } },
          });
        },
      };
    },
  };
}
