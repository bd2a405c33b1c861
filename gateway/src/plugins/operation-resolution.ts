import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloServerErrorCode } from '@apollo/server/errors';
import { GraphQLError, Kind } from 'graphql';

/**
 * A document whose operation cannot be chosen (an unknown `operationName`, or several operations and no
 * name) reaches @apollo/gateway's executor, which fails with a 500 and a stack in the error log. It is the
 * client's mistake: answer 400 OPERATION_RESOLUTION_FAILURE before execution.
 */
export function refuseUnresolvedOperations(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, document, request }) {
          if (operation) return;
          const operations = document.definitions.filter((definition) => definition.kind === Kind.OPERATION_DEFINITION).length;
          const name = request.operationName;
          const message =
            typeof name === 'string' && name !== ''
              ? `The document has no operation named "${name.slice(0, 100)}"`
              : operations > 1
                ? 'The document has several operations: say which to run in operationName'
                : 'The document has no operation to run';
          throw new GraphQLError(message, { extensions: { code: ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE, http: { status: 400 } } });
        },
      };
    },
  };
}
