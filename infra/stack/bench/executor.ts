// `npm run -s bench:executor -w @fed/stack -- [--rounds 7] [--iterations 300]`: the gateway's executor alone, in
// process, on the real plans of the nested and deep queries. The one-process stack (PGlite, seeded) answers
// each subgraph fetch once; those answers are recorded, then replayed to @apollo/gateway's `executeQueryPlan`
// and to our engine in alternating rounds, so that only execution and result shaping are timed (no HTTP, no
// Apollo Server pipeline, no subgraph). Both outputs must be byte-equal before anything is timed. Reports the
// CPU time per execution (process.cpuUsage, both threads of GC included) as medians of the rounds, as JSON.
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { buildOperationContext, executeQueryPlan, type GraphQLDataSource, type ServiceMap } from '@apollo/gateway';
import { operationFromDocument } from '@apollo/federation-internals';
import { parse } from 'graphql';
import { createExecutionEngine, plannerForApolloExecutor } from '@fed/gateway/execution';
import { median } from '@fed/platform/testing';
import { QUERIES, startSeededStack } from './queries.ts';

// `--only ours` (or `apollo`) times one executor: for a CPU profile of it alone (`node --cpu-prof --import tsx`).
const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, iterations: { type: 'string', default: '300' }, only: { type: 'string' } },
});
const rounds = Number(values.rounds);
const iterations = Number(values.iterations);
const log = (line: string) => process.stderr.write(`${line}\n`);


const { stack, logger, supergraphSdl, removeData } = await startSeededStack('bench-executor');

try {
  const engine = createExecutionEngine({ supergraphSdl, logger, dedupeRepresentations: false });
  const apiSchema = engine.supergraph.apiSchema();
  const supergraphSchema = engine.supergraph.schema.toGraphQLJSSchema();
  // Apollo's executor cannot follow the engine's type-conditioned paths: it runs the plans of Apollo's form.
  const apolloPlanner = plannerForApolloExecutor(engine.supergraph);
  // The gateway's own data sources: signed, breaker, everything a real fetch goes through.
  const live = (stack.gateway.gateway as unknown as { serviceMap: Record<string, { dataSource: GraphQLDataSource }> }).serviceMap;
  const contextValue = { viewer: { userId: '1', role: 'admin' as const } };
  const results: Record<string, unknown> = {};
  const prepared = [];

  // Every query is recorded before anything is timed: a long timing loop starves the subgraphs' keep-alive
  // timers, and the next live fetch would land on a socket the subgraph has closed.
  for (const [name, query] of Object.entries(QUERIES)) {
    const document = parse(query);
    const requestContext = () => ({
      request: { query, variables: {}, operationName: undefined },
      document,
      queryHash: createHash('sha256').update(query).digest('hex'),
      operationName: null,
      context: contextValue,
      metrics: {},
      logger,
      overallCachePolicy: { restrict: () => {}, replace: () => {}, policyIfCacheable: () => null },
    });
    const recorded = new Map<string, string>();
    const recording: ServiceMap = Object.fromEntries(
      Object.entries(live).map(([service, { dataSource }]) => [
        service,
        {
          process: async (options: Parameters<GraphQLDataSource['process']>[0]) => {
            const response = await dataSource.process(options);
            recorded.set(`${service}\n${options.request.query}\n${JSON.stringify(options.request.variables)}`, JSON.stringify(response));
            return response;
          },
        },
      ]),
    );
    const replaying: ServiceMap = Object.fromEntries(
      Object.keys(live).map((service) => [
        service,
        {
          process: async (options: Parameters<GraphQLDataSource['process']>[0]) => {
            const answer = recorded.get(`${service}\n${options.request.query}\n${JSON.stringify(options.request.variables)}`);
            if (!answer) throw new Error(`no recorded answer for a ${service} fetch`);
            return JSON.parse(answer);
          },
        },
      ]),
    );
    const plan = apolloPlanner.buildQueryPlan(operationFromDocument(apiSchema, document));
    const apollo = async (services: ServiceMap) => {
      const context = requestContext();
      const operationContext = buildOperationContext({ schema: engine.apiSchema, operationDocument: document });
      return JSON.stringify(await executeQueryPlan(plan, services, context as never, operationContext, supergraphSchema, apiSchema));
    };
    const ours = async (services: ServiceMap) => JSON.stringify(await engine.execute(requestContext() as never, services));

    const expected = await apollo(recording);
    const [apolloAnswer, ourAnswer] = [await apollo(replaying), await ours(replaying)];
    if (apolloAnswer !== expected || ourAnswer !== expected) {
      const at = [...expected].findIndex((char, index) => char !== (apolloAnswer === expected ? ourAnswer : apolloAnswer)[index]);
      throw new Error(`${name}: the executors' answers differ at ${at}: ${expected.slice(at - 200, at + 200)}\n---\n${ourAnswer.slice(at - 200, at + 200)}`);
    }
    if (expected.includes('"errors"')) throw new Error(`${name}: the answer has errors: ${expected.slice(0, 500)}`);
    log(`${name}: ${plan.node ? 'planned' : 'empty plan'}, ${recorded.size} subgraph answers, ${expected.length} bytes of JSON, byte-equal`);
    prepared.push({ name, apollo, ours, replaying, bytes: expected.length });
  }

  for (const { name, apollo, ours, replaying, bytes } of prepared) {
    const time = async (execute: (services: ServiceMap) => Promise<string>) => {
      const before = process.cpuUsage();
      for (let index = 0; index < iterations; index++) await execute(replaying);
      const used = process.cpuUsage(before);
      return (used.user + used.system) / 1000 / iterations;
    };
    const timed = { apollo: values.only !== 'ours', ours: values.only !== 'apollo' };
    const samples = { apollo: [] as number[], ours: [] as number[] };
    // The first round warms both up (JIT, caches) and is not counted.
    for (let round = 0; round <= rounds; round++) {
      if (timed.apollo) samples.apollo.push(await time(apollo));
      if (timed.ours) samples.ours.push(await time(ours));
      if (round === 0) samples.apollo.length = samples.ours.length = 0;
    }
    if (values.only) {
      log(`${name}: ${values.only} ${median(samples[values.only as 'ours' | 'apollo']).toFixed(3)} ms of CPU per execution`);
      continue;
    }
    const apolloMs = median(samples.apollo);
    const ourMs = median(samples.ours);
    results[name] = { bytes, apolloCpuMs: round3(apolloMs), ourCpuMs: round3(ourMs), ratio: round3(ourMs / apolloMs) };
    log(`${name}: Apollo ${apolloMs.toFixed(3)} ms, ours ${ourMs.toFixed(3)} ms of CPU per execution (${(ourMs / apolloMs).toFixed(2)}×)`);
  }
  process.stdout.write(`${JSON.stringify({ rounds, iterations, results }, null, 2)}\n`);
} finally {
  await stack.stop();
  removeData();
}

function round3(value: number) {
  return Math.round(value * 1000) / 1000;
}
