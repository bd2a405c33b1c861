import { parseExposition } from '@fed/platform/testing';
import type { BenchProcess } from './processes.ts';
import { nestedQuery } from './scenarios.ts';

export interface SqlCount {
  n: number;
  /** SQL statements both subgraphs ran for one nested request, net of their background work. */
  statementsPerRequest: number;
}

const metricsUrl = (subgraph: BenchProcess) => subgraph.url.replace(/\/graphql$/, '/metrics');

/** Every SQL statement the subgraph has sent so far, counted by its own `db_query_duration_seconds` histogram. */
async function statements(subgraphs: readonly BenchProcess[]): Promise<number> {
  let total = 0;
  for (const subgraph of subgraphs) {
    const response = await fetch(metricsUrl(subgraph));
    total += parseExposition(await response.text()).value('db_query_duration_seconds_count');
  }
  return total;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Statements per nested request at each N, through `gateway`, read from the subgraphs' metrics. The relay
 * and projection pollers also query in the background, so their rate over an idle window of the same length
 * is taken off.
 */
export async function sqlPerRequest(gateway: BenchProcess, subgraphs: readonly BenchProcess[], authorization: string, sizes: readonly number[], repeat = 20): Promise<SqlCount[]> {
  const results: SqlCount[] = [];
  for (const n of sizes) {
    const body = JSON.stringify({ query: nestedQuery(n) });
    const send = async () => {
      const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body });
      const answer = (await response.json()) as { data?: { users?: { edges?: unknown[] } }; errors?: unknown };
      if (response.status !== 200 || answer.errors || answer.data?.users?.edges?.length !== n) {
        throw new Error(`the nested query at N = ${n} answered ${response.status}: ${JSON.stringify(answer).slice(0, 300)}`);
      }
    };
    await send(); // plans and caches are warm before counting
    const before = await statements(subgraphs);
    const started = performance.now();
    for (let i = 0; i < repeat; i += 1) await send();
    const elapsed = performance.now() - started;
    const during = (await statements(subgraphs)) - before;
    const idleBefore = await statements(subgraphs);
    await sleep(elapsed);
    const idle = (await statements(subgraphs)) - idleBefore;
    results.push({ n, statementsPerRequest: Math.max(0, Math.round((during - idle) / repeat)) });
  }
  return results;
}
