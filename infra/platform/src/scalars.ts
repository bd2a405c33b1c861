import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

const parseDate = (value: unknown): Date => {
  const date = typeof value === 'string' ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    throw new GraphQLError('DateTime must be an ISO-8601 string', { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return date;
};

/** ISO-8601 timestamps in UTC, e.g. 2026-11-22T13:42:00.000Z. */
export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An ISO-8601 timestamp in UTC, e.g. 2026-11-22T13:42:00.000Z.',
  serialize: (value) => {
    const date = value instanceof Date ? value : parseDate(value);
    return date.toISOString();
  },
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});
