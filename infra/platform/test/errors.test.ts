import { createRequire } from 'node:module';
import { ApolloServer } from '@apollo/server';
import type * as graphqlModule from 'graphql';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createErrorFormatter, INTERNAL_SERVER_ERROR, publicError } from '../src/errors.ts';
import { observabilityPlugin } from '../src/observability/graphql-plugin.ts';
import { withRequestScope, type RequestScope } from '../src/observability/request-scope.ts';
import { createTelemetry } from '../src/observability/telemetry.ts';
import { captureLogger } from './support.ts';

const KNOWN_CODES = ['NOT_FOUND', 'FORBIDDEN'];

/**
 * The graphql module exactly as Node (and so Apollo Server) loads it. Under Vite, a bare `graphql` import in
 * transformed code may resolve to graphql's index.mjs while Apollo uses index.js: two GraphQLError classes, and
 * `instanceof` across them fails. In production there is one copy, and the error formatError receives is Apollo's.
 */
const ApolloGraphQL = createRequire(import.meta.url)('graphql') as typeof graphqlModule;

describe('createErrorFormatter', () => {
  it('keeps message, code and public extensions of a known error, dropping stacktrace and upstream details', () => {
    const { logger, lines } = captureLogger();
    const format = createErrorFormatter({ knownCodes: KNOWN_CODES, logger });
    const formatted: GraphQLFormattedError = {
      message: 'User 7 not found',
      locations: [{ line: 1, column: 3 }],
      path: ['user'],
      extensions: {
        code: 'NOT_FOUND',
        field: 'id',
        serviceName: 'users',
        stacktrace: ['GraphQLError: User 7 not found', '    at resolve (/srv/users/src/user/resolvers.ts:12:9)'],
        response: { url: 'http://users.internal:4001/graphql', status: 404, body: { secret: 'internal' } },
        http: { status: 404 },
        exception: { code: 'ECONNREFUSED' },
      },
    };

    const result = format(formatted, publicError('NOT_FOUND', 'User 7 not found', 'id'));

    expect(result).toStrictEqual({
      message: 'User 7 not found',
      locations: [{ line: 1, column: 3 }],
      path: ['user'],
      extensions: { code: 'NOT_FOUND', field: 'id', serviceName: 'users' },
    });
    expect(JSON.stringify(result)).not.toContain('users.internal');
    expect(lines).toEqual([]);
  });

  it("lets Apollo's own client-input codes through without listing them", () => {
    const { logger } = captureLogger();
    const format = createErrorFormatter({ knownCodes: [], logger });
    const result = format(
      { message: 'Cannot query field "nope" on type "Query".', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } },
      new GraphQLError('Cannot query field "nope" on type "Query".'),
    );
    expect(result.message).toBe('Cannot query field "nope" on type "Query".');
    expect(result.extensions).toEqual({ code: 'GRAPHQL_VALIDATION_FAILED' });
  });

  it('masks an unexpected error as Internal server error and logs the original for operators', () => {
    const { logger, lines } = captureLogger();
    const format = createErrorFormatter({ knownCodes: KNOWN_CODES, logger });
    const driverError = new Error('Failed query: select * from users where email = $1\nparams: ada@example.com');
    // What graphql-js inside Apollo hands formatError for a resolver that threw: a located error wrapping it.
    const resolverError = new ApolloGraphQL.GraphQLError(driverError.message, {
      path: ['userByEmail'],
      originalError: driverError,
    });

    const result = format(
      {
        message: driverError.message,
        locations: [{ line: 1, column: 3 }],
        path: ['userByEmail'],
        extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['Error: Failed query: select * from users'] },
      },
      resolverError,
    );

    expect(result).toStrictEqual({
      message: 'Internal server error',
      locations: [{ line: 1, column: 3 }],
      path: ['userByEmail'],
      extensions: { code: INTERNAL_SERVER_ERROR },
    });
    expect(INTERNAL_SERVER_ERROR).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(result)).not.toMatch(/select \* from users|ada@example\.com/);

    expect(lines).toHaveLength(1);
    const [entry] = lines;
    expect(entry).toMatchObject({ level: 50, msg: 'unexpected error (masked)', path: ['userByEmail'] });
    // The resolver wrapper is unwrapped, so the log shows the driver error itself.
    expect(entry?.err).toMatchObject({ type: 'Error', message: expect.stringContaining('select * from users') });
  });

  it('masks errors whose code is not known, or that have no code at all', () => {
    const { logger, lines } = captureLogger();
    const format = createErrorFormatter({ knownCodes: KNOWN_CODES, logger });
    const leaky = [
      { message: 'connect ECONNREFUSED 10.0.3.7:5432', extensions: { code: 'ECONNREFUSED' } },
      { message: 'Cannot read properties of undefined', extensions: {} },
      { message: 'no extensions at all' },
      { message: 'code is not a string', extensions: { code: 404 } },
      {
        message: 'Response not successful: Received status code 500',
        extensions: { code: 'SUBGRAPH_ERROR', response: { url: 'http://orders.internal:4002/graphql' } },
      },
    ] satisfies GraphQLFormattedError[];

    for (const formatted of leaky) {
      const result = format(formatted, new Error(formatted.message));
      expect(result.message).toBe('Internal server error');
      expect(result.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    }
    expect(lines).toHaveLength(leaky.length);
  });
});

describe('createErrorFormatter as Apollo formatError', () => {
  it('masks a resolver error and keeps a deliberate one, end to end, naming the request in the log and its access line', async () => {
    const { logger, lines } = captureLogger();
    const apollo = new ApolloServer<object>({
      typeDefs: 'type Query { broken: String, missing: String }',
      resolvers: {
        Query: {
          broken: () => {
            throw new Error('Failed query: select * from users');
          },
          missing: () => {
            throw publicError('NOT_FOUND', 'Nothing here');
          },
        },
      },
      includeStacktraceInErrorResponses: true,
      formatError: createErrorFormatter({ knownCodes: KNOWN_CODES, logger }),
      plugins: [observabilityPlugin(createTelemetry({ service: 'test' }))],
    });
    await apollo.start();
    try {
      const scope: RequestScope = { requestId: 'req-1', errorCodes: new Set() };
      const response = await apollo.executeOperation({ query: 'query Both { broken missing }' }, { contextValue: withRequestScope({}, scope) });
      expect(response.body.kind).toBe('single');
      const result = response.body.kind === 'single' ? response.body.singleResult : undefined;
      expect(result?.data).toEqual({ broken: null, missing: null });
      expect(result?.errors).toEqual([
        { message: 'Internal server error', locations: [{ line: 1, column: 14 }], path: ['broken'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
        { message: 'Nothing here', locations: [{ line: 1, column: 21 }], path: ['missing'], extensions: { code: 'NOT_FOUND' } },
      ]);
      const masked = lines.filter((line) => line.msg === 'unexpected error (masked)');
      expect(masked).toHaveLength(1);
      expect(masked[0]).toMatchObject({ requestId: 'req-1', path: ['broken'], err: { type: 'Error', message: 'Failed query: select * from users' } });
      // What the access line will say: the operation, and every code the response carried.
      expect(scope).toEqual({ requestId: 'req-1', operationName: 'Both', errorCodes: new Set(['INTERNAL_SERVER_ERROR', 'NOT_FOUND']) });
    } finally {
      await apollo.stop();
    }
  });
});
