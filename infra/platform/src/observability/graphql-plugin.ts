import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { markErrors, requestScopeOf } from './request-scope.ts';
import type { Telemetry } from './telemetry.ts';

/**
 * GraphQL's share of observability, for every service: operation durations by type and (known) name, errors
 * by code, and the operation's name and codes for the request's access-log line.
 */
export function observabilityPlugin<TContext extends BaseContext>({ metrics }: Telemetry): ApolloServerPlugin<TContext> {
  const durations = metrics.histogram({
    name: 'graphql_operation_duration_seconds',
    help: 'GraphQL operations from parse to response, by type and operation name (known names only)',
    labelNames: ['type', 'operation'] as const,
  });
  const errors = metrics.counter({
    name: 'graphql_errors_total',
    help: 'Errors in GraphQL responses, by extensions.code',
    labelNames: ['code'] as const,
  });
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async didResolveOperation({ operationName, contextValue }) {
          const scope = requestScopeOf(contextValue);
          if (scope && operationName) scope.operationName = operationName;
        },
        // Before formatError, which logs what it masks and sees only the error.
        async didEncounterErrors({ errors, contextValue }) {
          markErrors(errors, requestScopeOf(contextValue));
        },
        async willSendResponse({ response, operation, operationName, contextValue }) {
          const scope = requestScopeOf(contextValue);
          const result = response.body.kind === 'single' ? response.body.singleResult : response.body.initialResult;
          for (const error of result.errors ?? []) {
            const code = typeof error.extensions?.code === 'string' ? error.extensions.code : 'UNKNOWN';
            errors.inc({ code });
            scope?.errorCodes.add(code);
          }
          durations.observe(
            { type: operation?.operation ?? 'invalid', operation: metrics.operationLabel(operationName) },
            (performance.now() - started) / 1000,
          );
        },
      };
    },
  };
}
