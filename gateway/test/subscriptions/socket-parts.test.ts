import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import type { RawHttpResponse } from '@fed/platform';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { IncrementalItem } from '../../src/incremental/defer.ts';
import { createIncrementalDelivery } from '../../src/incremental/multipart.ts';
import type { IncrementalSlot } from '../../src/incremental/run.ts';
import { createPartReader } from '../../src/subscriptions/server.ts';

/**
 * graphql-ws turns a deferred query's multipart answer back into `next` payloads (the HTTP front hands it only
 * bytes): the reader must parse exactly what the gateway's own writer (incremental/multipart.ts) writes, however
 * the bytes are chunked. Each test drives the real writer.
 */

const ACCEPT = 'multipart/mixed;deferSpec=20220824, application/json';

async function* itemsOf(batches: IncrementalItem[][]) {
  yield* batches;
}

/** What the HTTP front gets for a deferred answer: the writer's chunks, in order. */
async function written(first: object, batches: IncrementalItem[][]): Promise<string[]> {
  const around = createIncrementalDelivery<{ incremental?: IncrementalSlot }>({ formatError: (formatted) => formatted });
  const admission: { incremental?: IncrementalSlot } = {};
  const exchange = { method: 'POST', headers: new HeaderMap([['accept', ACCEPT]]), search: '', body: { query: '{ a ... @defer { b } }' }, admission };
  const response = (await around(exchange, async () => {
    admission.incremental!.subsequent = itemsOf(batches);
    return { status: 200, headers: new HeaderMap([['content-type', 'application/json']]), body: { kind: 'complete', string: JSON.stringify(first) } } as HTTPGraphQLResponse;
  })) as HTTPGraphQLResponse;
  expect(response.body.kind).toBe('chunked');
  const chunks: string[] = [];
  if (response.body.kind === 'chunked') for await (const chunk of response.body.asyncIterator) chunks.push(chunk);
  return chunks;
}

const read = (chunks: string[]) => {
  const reader = createPartReader();
  const parts = chunks.flatMap((chunk) => reader.push(chunk));
  reader.end();
  return parts;
};

describe('reading the gateway’s multipart answers back as graphql-ws payloads', () => {
  const batches: IncrementalItem[][] = [
    [{ data: { b: 'x\r\n---\r\n"quoted"' }, path: ['a'], label: 'one' }],
    [
      { data: { c: 1 }, path: ['list', 0] },
      { path: ['list', 1], errors: [new GraphQLError('failed', { extensions: { code: 'SUBGRAPH_UNAVAILABLE' } })] },
    ],
  ];
  const expected = [
    { data: { a: 1 }, hasNext: true },
    { incremental: [{ data: { b: 'x\r\n---\r\n"quoted"' }, path: ['a'], label: 'one' }], hasNext: true },
    {
      incremental: [
        { data: { c: 1 }, path: ['list', 0] },
        { path: ['list', 1], errors: [{ message: 'failed', extensions: { code: 'SUBGRAPH_UNAVAILABLE' } }] },
      ],
      hasNext: true,
    },
    { hasNext: false },
  ];

  it('gives each part as written: the initial payload, each incremental payload, the last {hasNext: false}', async () => {
    const chunks = await written({ data: { a: 1 } }, batches);
    expect(read(chunks)).toEqual(expected);
  });

  it('whatever the chunking: byte by byte, or all at once', async () => {
    const text = (await written({ data: { a: 1 } }, batches)).join('');
    expect(read([...text])).toEqual(expected);
    expect(read([text])).toEqual(expected);
  });

  it('reads a cached answer sent as one part', async () => {
    const around = createIncrementalDelivery<{ incremental?: IncrementalSlot }>({
      formatError: (formatted) => formatted,
      inner: async (): Promise<RawHttpResponse> => ({ status: 200, headers: new HeaderMap([['content-type', 'application/json']]), bytes: Buffer.from('{"data":{"a":1}}\n') }),
    });
    const hit = (await around({ method: 'POST', headers: new HeaderMap([['accept', ACCEPT]]), search: '', body: { query: '{ a ... @defer { b } }' }, admission: {} }, async () => {
      throw new Error('not run: a hit');
    })) as RawHttpResponse;
    expect(hit.headers.get('content-type')).toMatch(/^multipart\/mixed/);
    expect(read([Buffer.from(hit.bytes).toString('utf8')])).toEqual([{ data: { a: 1 }, hasNext: false }]);
  });

  it('refuses a body cut short', async () => {
    const text = (await written({ data: { a: 1 } }, batches)).join('');
    const reader = createPartReader();
    reader.push(text.slice(0, -3));
    expect(() => reader.end()).toThrow(/closing delimiter/);
  });
});
