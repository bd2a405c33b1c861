import type { ServiceMap } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH } from '../../src/config.ts';
import { DEFAULT_POLICIES } from '../../src/authorization/policies.ts';
import { createExecutionEngine, plannerForApolloExecutor, type ExecutionEngine } from '../../src/execution/engine.ts';
import { readSupergraph } from '../../src/supergraph/load.ts';
import { buildCorpus, type CorpusEntry } from './corpus.ts';
import { apolloExecutor, logger, observe, requestContextFor, type Executor, type Observed } from './executors.ts';
import { compoundVariantsOf, seedOf, variantsOf } from './mutate.ts';
import { recording, replaying, type RecordedFetch, type Recording, type SubgraphCall } from './recorded.ts';
import { RECORDING_VIEWER, startRealSubgraphs, type RealSubgraphs } from './subgraphs.ts';

/**
 * The differential harness of issue 20. Every operation of the corpus is run once by Apollo's executor against
 * the real users and orders subgraphs on loopback, and their answers recorded. Then Apollo's executor and ours
 * run the same plan against those answers replayed (and against mutated copies of them): `JSON.stringify` of
 * data and errors (message, path, extensions) and of the result's extensions must be byte-equal, and both must
 * send the same subgraph requests (query and variables) in the same order.
 */

/** Mutated variants per corpus entry (210 entries), each run by both executors: one change each... */
const VARIANTS_PER_ENTRY = 10;
/** ...and three changes at once. */
const COMPOUND_VARIANTS_PER_ENTRY = 2;

const supergraphSdl = readSupergraph(DEFAULT_SUPERGRAPH_PATH);
// The subgraph requests are compared too, so the optional optimisations are off (issue 20).
const engine = createExecutionEngine({ supergraphSdl, logger, dedupeRepresentations: false, policies: DEFAULT_POLICIES });
// Apollo's executor runs the plans of a planner configured as @apollo/gateway's is, on the engine's supergraph:
// the same plans but for the engine's type-conditioned paths, which Apollo's executor cannot follow.
const apollo = apolloExecutor(engine.supergraph, plannerForApolloExecutor(engine.supergraph));

/** Entries the engine handed to Apollo's executor: they prove nothing, so the corpus says which may. */
const fellBack = new Set<string>();

/** Ours, as the gateway runs it: what the engine does not run goes to Apollo's executor. */
const ours =
  (target: ExecutionEngine): Executor =>
  (entry, serviceMap) =>
    target.execute(requestContextFor(entry, apollo.apiSchemaJs), serviceMap, () => {
      fellBack.add(entry.id);
      return apollo.execute(entry, serviceMap);
    });

const corpus = buildCorpus();
const recordings = new Map<string, Recording>();
let subgraphs: RealSubgraphs;

async function run(execute: Executor, entry: CorpusEntry, answers: Recording, base: Recording): Promise<Observed> {
  const calls: SubgraphCall[] = [];
  const serviceMap = replaying(answers, base, calls);
  return observe(() => execute(entry, serviceMap), calls);
}

interface Divergence {
  apollo: Observed;
  ours: Observed;
}

/** Apollo's executor and `candidate` on one set of answers: how they differ, or null. */
async function differential(candidate: Executor, entry: CorpusEntry, answers: Recording, base: Recording): Promise<Divergence | null> {
  const reference = await run(apollo.execute, entry, answers, base);
  const tested = await run(candidate, entry, answers, base);
  const same =
    reference.result === tested.result && reference.extensions === tested.extensions && JSON.stringify(reference.requests) === JSON.stringify(tested.requests);
  return same ? null : { apollo: reference, ours: tested };
}

const described = (entry: CorpusEntry) => `${entry.operationName ? `${entry.operationName} of ` : ''}${entry.query} variables: ${JSON.stringify(entry.variables)}`;

beforeAll(async () => {
  subgraphs = await startRealSubgraphs();
  const record = async (entry: CorpusEntry) => {
    const fetches: RecordedFetch[] = [];
    // Apollo's executor throws on a few requests (a null for a condition's variable): the comparison sees it.
    await apollo.execute(entry, recording(subgraphs.dataSources(RECORDING_VIEWER), fetches)).catch(() => {});
    recordings.set(entry.id, fetches);
  };
  // Queries only read, so a few at a time; then the mutations one after another, in corpus order.
  const queries = corpus.filter((e) => e.kind === 'query');
  const next = { index: 0 };
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next.index < queries.length) await record(queries[next.index++]!);
    }),
  );
  for (const entry of corpus.filter((e) => e.kind === 'mutation')) await record(entry);
});

afterAll(async () => {
  await subgraphs?.stop();
});

describe('the harness', () => {
  it('has a corpus of at least 40 operations from the tests and the contract, generated ones and mutations', () => {
    const distinct = (origin: CorpusEntry['origin']) => new Set(corpus.filter((e) => e.origin === origin).map((e) => `${e.query}\n${e.operationName ?? ''}`)).size;
    expect(distinct('tests') + distinct('contract')).toBeGreaterThanOrEqual(40);
    expect(distinct('generated')).toBeGreaterThanOrEqual(30);
    expect(corpus.filter((e) => e.kind === 'mutation').length).toBeGreaterThanOrEqual(2);
  });

  it('recorded the real subgraphs, and a replay makes exactly the recorded requests', async () => {
    let fetches = 0;
    for (const entry of corpus) {
      const recorded = recordings.get(entry.id)!;
      fetches += recorded.length;
      const calls: SubgraphCall[] = [];
      await apollo.execute(entry, replaying(recorded, recorded, calls)).catch(() => {});
      const sorted = (list: SubgraphCall[]) => list.map((c) => `${c.service} ${c.query} ${c.variables}`).sort();
      expect(sorted(calls), entry.id).toEqual(sorted([...recorded]));
    }
    expect(fetches).toBeGreaterThan(corpus.length);
  });

  it('tells apart executors that differ in data, errors, extensions or requests', async () => {
    const byQuery = (text: string) => corpus.find((e) => e.query.startsWith(text))!;
    const twoSubgraphs = byQuery('{ user(id: "999999") { id name orders(first: 2)');
    const sabotaged: [string, CorpusEntry, Executor][] = [
      [
        'keys in another order',
        byQuery('{ a: user(id: "1") { name } b: user(id: "2")'),
        async (e, services) => {
          const result = await apollo.execute(e, services);
          return { ...result, data: Object.fromEntries(Object.entries(result.data ?? {}).reverse()) };
        },
      ],
      ['an error without its path', twoSubgraphs, async (e, services) => {
        const result = await apollo.execute(e, services);
        return { ...result, errors: result.errors?.map((error, i) => (i === 0 ? new GraphQLError(error.message, { extensions: error.extensions }) : error)) };
      }],
      ['other extensions', twoSubgraphs, async (e, services) => ({ ...(await apollo.execute(e, services)), extensions: { extra: true } })],
      ['one more request', twoSubgraphs, async (e, services) => {
        await services.users!.process({ request: { query: '{ __typename }', variables: {} } } as never);
        return apollo.execute(e, services);
      }],
      ['requests in another order', twoSubgraphs, async (e, services) => {
        // The users subgraph's root fetch waits for a timer: the orders one, in parallel with it, goes first.
        const users = services.users!;
        const late: ServiceMap = { ...services, users: { process: async (options) => (await new Promise((resolve) => setTimeout(resolve, 1)), users.process(options)) } };
        return apollo.execute(e, late);
      }],
    ];
    for (const [name, entry, executor] of sabotaged) {
      const recorded = recordings.get(entry.id)!;
      expect(await differential(executor, entry, recorded, recorded), name).not.toBeNull();
      // And the comparison itself is stable: Apollo's executor against itself, on the same entry.
      expect(await differential(apollo.execute, entry, recorded, recorded), name).toBeNull();
    }
  });
});

describe("Apollo's executor and ours, on recorded answers", () => {
  for (const entry of corpus) {
    it(entry.id, async () => {
      const recorded = recordings.get(entry.id)!;
      expect(await differential(ours(engine), entry, recorded, recorded), described(entry)).toBeNull();
    });
  }

  it('ran every operation on our executor except those that ask for introspection', () => {
    const expected = corpus.filter((e) => /__schema|__type\b/.test(e.query)).map((e) => e.id);
    expect([...fellBack].sort()).toEqual(expected.sort());
  });
});

describe("Apollo's executor and ours with representations deduplicated, on recorded answers", () => {
  const deduplicating = ours(createExecutionEngine({ supergraphSdl, logger, dedupeRepresentations: true, policies: DEFAULT_POLICIES }));
  for (const entry of corpus) {
    it(entry.id, async () => {
      const recorded = recordings.get(entry.id)!;
      // The requests may differ (that is the optimisation); the answer must not.
      const reference = await run(apollo.execute, entry, recorded, recorded);
      const deduplicated = await run(deduplicating, entry, recorded, recorded);
      expect({ result: deduplicated.result, extensions: deduplicated.extensions }, described(entry)).toEqual({ result: reference.result, extensions: reference.extensions });
    });
  }
});

describe("Apollo's executor and ours, on mutated answers", () => {
  for (const entry of corpus) {
    it(entry.id, async () => {
      const recorded = recordings.get(entry.id)!;
      const divergences: ({ mutation: string } & Divergence)[] = [];
      const variants = [...variantsOf(recorded, seedOf(entry.id), VARIANTS_PER_ENTRY), ...compoundVariantsOf(recorded, seedOf(entry.id) ^ 1, COMPOUND_VARIANTS_PER_ENTRY)];
      for (const variant of variants) {
        const difference = await differential(ours(engine), entry, variant.recording, recorded);
        if (difference) divergences.push({ mutation: variant.description, ...difference });
      }
      expect(divergences, described(entry)).toEqual([]);
    });
  }
});
