import { Writable } from 'node:stream';
import { GraphQLError } from 'graphql';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createGatewayErrorFormatter } from '../src/errors/format.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const downstream = (message: string, extensions: Record<string, unknown>) => {
  const error = new GraphQLError(message, { extensions, path: ['users'] });
  return [{ message, path: ['users'], extensions }, error] as const;
};

describe('gateway error masking', () => {
  it('passes a subgraph’s public code with its message, and nothing but public extensions', () => {
    const { logger } = capture();
    const format = createGatewayErrorFormatter(logger);
    const [formatted, error] = downstream('A user with this email already exists', {
      code: 'EMAIL_TAKEN',
      field: 'input.email',
      serviceName: 'users',
      response: { url: 'http://10.0.0.7:4001/graphql', body: 'secret' },
      exception: { stacktrace: ['at x (/srv/app.js:1:1)'] },
    });
    expect(format(formatted, error)).toEqual({
      message: 'A user with this email already exists',
      path: ['users'],
      extensions: { code: 'EMAIL_TAKEN', field: 'input.email', serviceName: 'users' },
    });
  });

  it('masks a subgraph error under a code it does not know, keeping only the subgraph’s name, and logs the original', () => {
    const { logger, lines } = capture();
    const format = createGatewayErrorFormatter(logger);
    const leaky = 'relation "orders" does not exist: select * from orders (postgres://admin:s3cret@10.1.2.3:5432/orders)';
    const [formatted, error] = downstream(leaky, { code: 'DB_ERROR', serviceName: 'orders' });
    const result = format(formatted, error);
    expect(result).toEqual({ message: 'Internal server error', path: ['users'], extensions: { code: 'INTERNAL_SERVER_ERROR', serviceName: 'orders' } });
    expect(JSON.stringify(result)).not.toContain('s3cret');
    expect(lines.join('')).toContain('select * from orders');
  });

  it('masks INTERNAL_SERVER_ERROR and code-less errors whatever their message says', () => {
    const { logger } = capture();
    const format = createGatewayErrorFormatter(logger);
    for (const extensions of [{ code: 'INTERNAL_SERVER_ERROR', serviceName: 'users' }, {}]) {
      const [formatted, error] = downstream('ECONNREFUSED http://users.internal:4001/graphql', extensions);
      expect(format(formatted, error).message).toBe('Internal server error');
    }
  });

  it('lets a deployment choose the public codes of its own subgraphs', () => {
    const { logger } = capture();
    const format = createGatewayErrorFormatter(logger, ['OUT_OF_STOCK']);
    const [formatted, error] = downstream('Only 2 left', { code: 'OUT_OF_STOCK', serviceName: 'inventory' });
    expect(format(formatted, error).message).toBe('Only 2 left');
  });
});
