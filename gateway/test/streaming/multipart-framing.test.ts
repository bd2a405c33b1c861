// The multipart transport on a fake engine: the exact bytes of a stream, and a transport-level error as its last
// part whatever the engine would send next (Apollo's protocol allows nothing after `payload: null`).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError, parse, type ExecutionResult, type OperationDefinitionNode } from 'graphql';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@fed/platform';
import { serveMultipartSubscriptions } from '../../src/streaming/multipart.ts';
import { createSocketRegistry, DEFAULT_SUBSCRIPTION_LIMITS } from '../../src/subscriptions/admission.ts';
import type { SubscriptionEngine } from '../../src/subscriptions/engine.ts';
import type { OperationAdmission } from '../../src/subscriptions/operation.ts';

const HEAD = '\r\ncontent-type: application/json; charset=utf-8\r\n\r\n';
const document = parse('subscription { ticks }');
const operation = document.definitions[0] as OperationDefinitionNode;

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A gateway-less multipart route whose engine yields `results`, then stays open until the client leaves. */
async function serve(results: ExecutionResult[]) {
  const state = { returned: false };
  const engine = {
    schema: undefined,
    cursorOf: () => undefined,
    subscribe: (): AsyncIterableIterator<ExecutionResult> => {
      const queue = [...results];
      const iterator: AsyncIterableIterator<ExecutionResult> = {
        next: async () => (queue.length > 0 && !state.returned ? { value: queue.shift()!, done: false } : new Promise(() => {})),
        return: async () => {
          state.returned = true;
          return { value: undefined, done: true };
        },
        [Symbol.asyncIterator]: () => iterator,
      };
      return iterator;
    },
  } as unknown as SubscriptionEngine;
  const operations = { admit: () => ({ admitted: { document, operation, operationName: null, variables: {} } }) } as unknown as OperationAdmission;
  const registry = createSocketRegistry(DEFAULT_SUBSCRIPTION_LIMITS);
  const streams = serveMultipartSubscriptions({
    engine,
    operations,
    registry,
    admit: async () => ({ viewer: null }),
    executePlain: () => Promise.reject(new Error('not a query')),
    formatError: (formatted) => formatted,
    maxBodyBytes: 10_000,
    trustedProxyHops: 0,
    heartbeatMs: 60_000,
    logger: createLogger({ name: 'test', level: 'silent' }),
  });
  server = createServer((req, res) => void streams.handle(req, res, new URL(req.url ?? '/', 'http://localhost')));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  return { url, state, streams };
}

const subscribe = (url: string) =>
  fetch(url, { method: 'POST', headers: { accept: 'multipart/mixed;subscriptionSpec=1.0,application/json', 'content-type': 'application/json' }, body: JSON.stringify({ query: 'subscription { ticks }' }) });

describe('multipart subscriptions, byte for byte', () => {
  it('wraps events in `payload`, ends at the first result without data with `payload: null` and the closing boundary, and lets the upstream go', async () => {
    const internal = new GraphQLError('Internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    const { url, state, streams } = await serve([{ data: { ticks: 1 } }, { errors: [internal] }, { data: { ticks: 2 } }]);
    const response = await subscribe(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"');
    // The body ends: nothing after the transport-level error, though the engine had another event.
    expect(await response.text()).toBe(
      `\r\n--graphql${HEAD}{"payload":{"data":{"ticks":1}}}\r\n--graphql${HEAD}{"payload":null,"errors":[{"message":"Internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}\r\n--graphql--\r\n`,
    );
    expect(state.returned).toBe(true);
    expect(streams.streams()).toBe(0);
  });

  it('ends every open stream with STREAM_UNAVAILABLE when disposed (draining)', async () => {
    const { url, streams } = await serve([{ data: { ticks: 1 } }]);
    const response = await subscribe(url);
    const reader = response.body!.getReader();
    let body = '';
    const decoder = new TextDecoder();
    while (!body.includes('"ticks":1')) body += decoder.decode((await reader.read()).value, { stream: true });
    streams.dispose();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += decoder.decode(value, { stream: true });
    }
    const [, error] = body.split(HEAD).slice(1);
    expect(JSON.parse(error!.slice(0, error!.indexOf('\r\n--graphql')))).toMatchObject({ payload: null, errors: [{ extensions: { code: 'STREAM_UNAVAILABLE' } }] });
    expect(body.endsWith('\r\n--graphql--\r\n')).toBe(true);
    expect(streams.streams()).toBe(0);
  });
});
