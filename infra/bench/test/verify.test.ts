import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadRequest } from '../src/load.ts';
import { httpScenarios } from '../src/scenarios.ts';
import { checkAnswers, type Answering } from '../src/verify.ts';

interface Received {
  body: string;
  authorization: string | undefined;
}

interface Reply {
  status?: number;
  /** Sent as JSON unless `text` is set. */
  json?: unknown;
  text?: string;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A real HTTP server on loopback that answers each POSTed body as `reply` says, and records what it got, in order. */
async function gateway(name: string, reply: (body: string) => Reply): Promise<Answering & { received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      received.push({ body, authorization: request.headers.authorization });
      const { status = 200, json, text } = reply(body);
      response.writeHead(status, { 'content-type': text === undefined ? 'application/json' : 'text/plain' });
      response.end(text ?? JSON.stringify(json));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { name, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, received };
}

/** What a correct gateway answers: data derived from the request, the same for any gateway. */
const correct = (body: string): Reply => {
  const { query, variables } = JSON.parse(body) as { query: string; variables?: Record<string, unknown> };
  return { json: { data: { echo: { operation: query.split(/[\s({]/)[1] ?? 'anonymous', variables: variables ?? null, list: [1, 2, { deep: [true, null] }] } } } };
};

const request = (query: string, variables?: Record<string, unknown>, authorization = 'Bearer admin'): LoadRequest => ({
  body: JSON.stringify(variables ? { query, variables } : { query }),
  authorization,
});

const REQUESTS = [request('query A { a }'), request('query B($id: ID!) { user(id: $id) { id } }', { id: '7' }), request('query B($id: ID!) { user(id: $id) { id } }', { id: '8' })];

describe('checkAnswers', () => {
  it('passes when every gateway answers every distinct request deep-equal to the reference, and sends each one', async () => {
    const reference = await gateway('apollo', correct);
    const others = [await gateway('ours', correct), await gateway('hive', correct)];
    // It returns the size of the reference's answer to each distinct request, in bytes, in the order sent.
    const expectedSizes = REQUESTS.map(({ body }) => Buffer.byteLength(JSON.stringify(correct(body).json)));
    await expect(checkAnswers('nested', others, reference, [...REQUESTS, ...REQUESTS])).resolves.toEqual(expectedSizes);
    // Each distinct request reached the reference and every gateway, with its body and authorization intact.
    const distinct = REQUESTS.map(({ body, authorization }) => ({ body, authorization }));
    for (const target of [reference, ...others]) {
      expect(new Set(target.received.map((r) => JSON.stringify(r)))).toEqual(new Set(distinct.map((r) => JSON.stringify(r))));
    }
  });

  it('passes when the data only differs in the order of object keys (the same data)', async () => {
    const reference = await gateway('apollo', () => ({ json: { data: { user: { id: '1', name: 'Ann', orders: [{ id: 'o1', total: 3 }] } } } }));
    const ours = await gateway('ours', () => ({ json: { data: { user: { orders: [{ total: 3, id: 'o1' }], name: 'Ann', id: '1' } } } }));
    await expect(checkAnswers('entity', [ours], reference, REQUESTS)).resolves.toHaveLength(REQUESTS.length);
  });

  it('measures the reference’s answers in bytes of UTF-8, not in characters', async () => {
    const data = { data: { user: { id: '1', name: 'Zoë Ørsted · 名前 😀' } } };
    const reference = await gateway('apollo', () => ({ json: data }));
    const ours = await gateway('ours', () => ({ json: data }));
    const sizes = await checkAnswers('entity', [ours], reference, [REQUESTS[0]!]);
    expect(sizes).toEqual([Buffer.byteLength(JSON.stringify(data), 'utf8')]);
    expect(sizes[0]).toBeGreaterThan(JSON.stringify(data).length);
  });

  it('throws naming the gateway that answers different data, and the scenario, and stops there', async () => {
    const reference = await gateway('apollo', correct);
    const ours = await gateway('ours', correct);
    const hive = await gateway('hive', (body) => {
      const answer = correct(body);
      // One nested value differs, only for the second request.
      if (body.includes('"7"')) (answer.json as { data: { echo: { list: unknown[] } } }).data.echo.list[2] = { deep: [true, false] };
      return answer;
    });
    const failure = checkAnswers('entity', [ours, hive], reference, REQUESTS);
    await expect(failure).rejects.toThrow(/^entity: hive answers differently from apollo; nothing was timed/);
    await expect(failure).rejects.toThrow(/"7"/);
    // Each request goes twice to a gateway (the second answer of a cache is its hit); nothing after the failing one.
    expect(hive.received.map((r) => r.body)).toEqual([REQUESTS[0]!.body, REQUESTS[0]!.body, REQUESTS[1]!.body]);
  });

  it('throws naming the gateway when it answers with errors, even alongside the same data', async () => {
    const reference = await gateway('apollo', correct);
    const hive = await gateway('hive', correct);
    const ours = await gateway('ours', (body) => ({ json: { ...(correct(body).json as object), errors: [{ message: 'Rate limited' }] } }));
    await expect(checkAnswers('mix', [hive, ours], reference, REQUESTS)).rejects.toThrow(/^mix: ours answers differently from apollo/);
  });

  it('throws naming the gateway when it answers a non-200 status with a GraphQL body', async () => {
    const reference = await gateway('apollo', correct);
    const ours = await gateway('ours', (body) => ({ status: 503, json: correct(body).json }));
    await expect(checkAnswers('nested', [ours], reference, REQUESTS)).rejects.toThrow(/^nested: ours answers differently from apollo[\s\S]*503/);
  });

  it('throws naming the gateway when it answers a non-200 status with a body that is not JSON', async () => {
    // What a proxy in front of a dead gateway, or Apollo Server refusing a request before GraphQL, answers.
    const reference = await gateway('apollo', correct);
    const ours = await gateway('ours', () => ({ status: 502, text: 'Bad Gateway' }));
    await expect(checkAnswers('nested', [ours], reference, REQUESTS)).rejects.toThrow(/ours[\s\S]*502/);
  });

  it('throws naming the reference when the reference itself answers errors, before any gateway is asked', async () => {
    const reference = await gateway('apollo', () => ({ json: { data: null, errors: [{ message: 'subgraph down' }] } }));
    const ours = await gateway('ours', correct);
    await expect(checkAnswers('nested', [ours], reference, REQUESTS)).rejects.toThrow(/^nested: apollo answered 200: .*subgraph down/);
    expect(ours.received).toEqual([]);
  });

  it('sends every read before any write, to the reference and to every gateway (the mix scenario’s real requests)', async () => {
    const mix = httpScenarios(1000).find((scenario) => scenario.name === 'mix')!;
    const requests = mix.requests('Bearer admin');
    const isMutation = (body: string) => /^mutation\b/.test((JSON.parse(body) as { query: string }).query.trim());
    // The list really interleaves reads and writes.
    expect(requests.filter((r) => isMutation(r.body)).length).toBeGreaterThan(1);
    expect(isMutation(requests.at(-1)!.body) && !isMutation(requests[0]!.body)).toBe(true);

    const reference = await gateway('apollo', correct);
    const others = [await gateway('ours', correct), await gateway('hive', correct)];
    await checkAnswers(mix.name, others, reference, requests);
    for (const target of [reference, ...others]) {
      const order = target.received.map((r) => isMutation(r.body));
      const firstWrite = order.indexOf(true);
      const lastRead = order.lastIndexOf(false);
      expect(firstWrite, `${target.name}: a write was sent`).toBeGreaterThanOrEqual(0);
      expect(lastRead, `${target.name}: the last read came before the first write`).toBeLessThan(firstWrite);
      // Once to the reference, twice to every other gateway (so that a cache's hit is compared too).
      expect(target.received).toHaveLength((target === reference ? 1 : 2) * new Set(requests.map((r) => r.body)).size);
    }
  });
});
