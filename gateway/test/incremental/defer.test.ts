import { parse, print, type DocumentNode } from 'graphql';
import type { GatewayExecutionResult } from '@apollo/server-gateway-interface';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../src/config.ts';
import { DEFAULT_POLICIES } from '../../src/authorization/policies.ts';
import { createExecutionEngine } from '../../src/execution/engine.ts';
import type { IncrementalItem } from '../../src/incremental/defer.ts';
import type { IncrementalSlot } from '../../src/incremental/run.ts';
import { readSupergraph } from '../../src/supergraph/load.ts';
import { buildCorpus, type CorpusEntry } from '../execution/corpus.ts';
import { logger, requestContextFor } from '../execution/executors.ts';
import { RECORDING_VIEWER, startRealSubgraphs, type RealSubgraphs } from '../execution/subgraphs.ts';
import { deferVariant, mergeAt } from './variants.ts';

/**
 * @defer through the engine, on every query of the executor's corpus (issue 20's differential harness) turned
 * into deferred variants, against the real users and orders subgraphs: the parts a multipart client gets,
 * merged as Apollo Client merges them, must equal the whole answer; and a client that takes the answer whole
 * gets the same data, byte for byte, and the same errors as for the operation without @defer.
 */

const engine = createExecutionEngine({ supergraphSdl: readSupergraph(DEFAULT_SUPERGRAPH_PATH), logger, dedupeRepresentations: false, policies: DEFAULT_POLICIES });
let subgraphs: RealSubgraphs;

beforeAll(async () => {
  subgraphs = await startRealSubgraphs();
});
afterAll(async () => {
  await subgraphs?.stop();
});

interface Run {
  result: GatewayExecutionResult;
  items: IncrementalItem[][];
  fellBack: boolean;
}

async function execute(entry: CorpusEntry, document: DocumentNode, inParts: boolean): Promise<Run> {
  const query = print(document);
  const context = requestContextFor({ ...entry, query, document }, engine.apiSchema);
  const slot: IncrementalSlot = {};
  if (inParts) (context.context as { incremental?: IncrementalSlot }).incremental = slot;
  let fellBack = false;
  const result = await engine.execute(context, subgraphs.dataSources(RECORDING_VIEWER), async () => {
    fellBack = true;
    return {};
  });
  const items: IncrementalItem[][] = [];
  if (slot.subsequent) for await (const part of slot.subsequent) items.push(part);
  return { result, items, fellBack };
}

const corpus = buildCorpus().filter((entry) => entry.kind === 'query');

describe.each([
  ['the root fields', true],
  ['every level, nested and in lists', false],
] as const)('@defer split at %s', (_name, outermost) => {
  it('merged parts equal the whole answer, and a whole answer has the bytes of the one without @defer', async () => {
    let streamed = 0;
    let items = 0;
    for (const entry of corpus) {
      const variant = deferVariant(entry.document, outermost);
      if (print(variant) === print(entry.document)) continue;
      const plain = await execute(entry, entry.document, false).catch((error: Error) => error);
      // Apollo's executor throws on these too (a null for a condition's variable): so must the variant.
      if (plain instanceof Error) {
        await expect(execute(entry, variant, false), entry.id).rejects.toThrow(plain.message);
        continue;
      }
      if (plain.fellBack) continue;
      const whole = await execute(entry, variant, false);
      expect(JSON.stringify(whole.result.data), entry.id).toBe(JSON.stringify(plain.result.data));
      expect(JSON.stringify(whole.result.extensions), entry.id).toBe(JSON.stringify(plain.result.extensions));
      // Deferred parts run after the primary one: fetches that ran side by side may now fail in another order.
      const sortedErrors = (run: Run) => run.result.errors?.map((error) => JSON.stringify(error)).sort();
      expect(sortedErrors(whole), entry.id).toEqual(sortedErrors(plain));

      const parts = await execute(entry, variant, true);
      expect(parts.fellBack, entry.id).toBe(false);
      if (parts.items.length === 0) continue;
      streamed += 1;
      let data: unknown = parts.result.data;
      for (const part of parts.items) {
        for (const item of part) {
          items += 1;
          if (item.data) data = mergeAt(data, item.path, item.data);
        }
      }
      // Errors and nulls may sit at other depths (a deferred fragment is a boundary for nulls); data that
      // came back whole and clean must come back the same in parts.
      if (!plain.result.errors && !plain.result.extensions) {
        expect(parts.result.errors, entry.id).toBeUndefined();
        expect(parts.items.flat().filter((item) => item.errors || item.extensions), entry.id).toEqual([]);
        expect(data, entry.id).toEqual(plain.result.data);
      }
    }
    // The corpus exercises this: most queries have something to defer.
    expect(streamed).toBeGreaterThan(40);
    expect(items).toBeGreaterThan(streamed);
  });
});

describe('@defer in parts', () => {
  const entry = (query: string, variables?: Record<string, unknown>): CorpusEntry => ({ id: query, origin: 'tests', query, variables, document: parse(query), kind: 'query' });

  it('labels items, gives list elements their index paths, and sends a nested part after the part it is in', async () => {
    const query = `{ users(first: 2) { edges { node { id ... @defer(label: "orders") { orderCount orders(first: 2) { edges { node { id ... @defer(label: "items") { items { sku } } } } } } } } } }`;
    const { result, items } = await execute(entry(query), parse(query), true);
    expect(result.data).toEqual({ users: { edges: [{ node: { id: '1' } }, { node: { id: '2' } }] } });
    expect(items.map((part) => part.map((item) => [item.label, item.path.join('.')]))).toEqual([
      [
        ['orders', 'users.edges.0.node'],
        ['orders', 'users.edges.1.node'],
      ],
      [
        ['items', 'users.edges.0.node.orders.edges.0.node'],
        ['items', 'users.edges.0.node.orders.edges.1.node'],
        ['items', 'users.edges.1.node.orders.edges.0.node'],
        ['items', 'users.edges.1.node.orders.edges.1.node'],
      ],
    ]);
    // Each part carries only its own fields, even though the nested part's were merged into the client's copy.
    expect(Object.keys((items[0]![0]!.data as { orders: { edges: { node: object }[] } }).orders.edges[0]!.node)).toEqual(['id']);
  });

  it('defers nothing when @defer(if:) is false, and streams when it is true', async () => {
    const query = `query ($d: Boolean!) { user(id: "2") { id ... @defer(if: $d) { email orderCount } } }`;
    const off = await execute(entry(query, { d: false }), parse(query), true);
    expect(off.items).toEqual([]);
    expect(off.result.data).toEqual({ user: { id: '2', email: expect.any(String), orderCount: 3 } });
    const on = await execute(entry(query, { d: true }), parse(query), true);
    expect(on.result.data).toEqual({ user: { id: '2' } });
    expect(on.items).toEqual([[{ data: { email: off.result.data!.user!.email, orderCount: 3 }, path: ['user'] }]]);
  });

  it('sends nothing for an object the initial payload left null', async () => {
    const query = `{ user(id: "999999") { id ... @defer { email orderCount } } }`;
    const { result, items } = await execute(entry(query), parse(query), true);
    expect(result.data).toEqual({ user: null });
    expect(items.flat()).toEqual([]);
  });
});

describe('the API schema', () => {
  it('has @defer, and introspection shows it with its arguments', async () => {
    const query = '{ __schema { directives { name locations args { name } } } }';
    let fellBack = false;
    const context = requestContextFor({ id: query, origin: 'tests', query, variables: undefined, document: parse(query), kind: 'query' }, engine.apiSchema);
    const result = await engine.execute(context, subgraphs.dataSources(RECORDING_VIEWER), async () => {
      fellBack = true;
      return {};
    });
    expect(fellBack).toBe(false);
    const directives = (result.data as { __schema: { directives: { name: string; locations: string[]; args: { name: string }[] }[] } }).__schema.directives;
    expect(directives.find((directive) => directive.name === 'defer')).toEqual({ name: 'defer', locations: ['FRAGMENT_SPREAD', 'INLINE_FRAGMENT'], args: [{ name: 'label' }, { name: 'if' }] });
  });
});
