import { isDeepStrictEqual } from 'node:util';
import { headersOf, type LoadRequest } from './load.ts';
import { readsThenWrites } from './scenarios.ts';

/** Where a gateway answers GraphQL, and what to call it in errors. */
export interface Answering {
  name: string;
  url: string;
}

interface Answer {
  status: number;
  /** The body's size in bytes (UTF-8). */
  bytes: number;
  data?: unknown;
  errors?: unknown;
  /** A body that is not JSON (a proxy's 502, a plain-text 400), as text. */
  text?: string;
}

async function answer(gateway: Answering, request: LoadRequest): Promise<Answer> {
  const response = await fetch(gateway.url, { method: 'POST', headers: headersOf(request), body: request.body });
  const text = await response.text();
  const bytes = Buffer.byteLength(text);
  try {
    return { status: response.status, bytes, ...(JSON.parse(text) as Omit<Answer, 'status' | 'bytes'>) };
  } catch {
    return { status: response.status, bytes, text: text.slice(0, 300) };
  }
}

/**
 * Nothing is timed unless every gateway answers every distinct request of the scenario, twice (so a cache's hit
 * is checked too), exactly as the reference (bare Apollo Gateway) does: status 200, no errors, deep-equal data.
 * Throws naming the first that does not. Returns the size in bytes of the reference's answer to each distinct request,
 * in the order they were sent.
 */
export async function checkAnswers(scenario: string, gateways: readonly Answering[], reference: Answering, requests: readonly LoadRequest[]): Promise<number[]> {
  const sizes: number[] = [];
  for (const request of readsThenWrites(requests)) {
    const expected = await answer(reference, request);
    sizes.push(expected.bytes);
    if (expected.status !== 200 || expected.errors || expected.text !== undefined) throw new Error(`${scenario}: ${reference.name} answered ${expected.status}: ${JSON.stringify(expected).slice(0, 300)}`);
    // Twice each, in turn: a caching gateway's second answer is its cached one, and it must be the same. The
    // gateways side by side: each has its own cache, and a scenario's writes are idempotent (the same id always
    // gets the same name), so they answer as they would one after the other.
    const failures = await Promise.all(
      gateways.map(async (gateway) => {
        for (let time = 0; time < 2; time += 1) {
          const actual = await answer(gateway, request);
          if (actual.status !== 200 || actual.errors || actual.text !== undefined || !isDeepStrictEqual(actual.data, expected.data)) {
            return `${scenario}: ${gateway.name} answers differently from ${reference.name}; nothing was timed.\n  request: ${request.body.slice(0, 200)}\n  ${gateway.name}: ${JSON.stringify(actual).slice(0, 300)}\n  ${reference.name}: ${JSON.stringify(expected).slice(0, 300)}`;
          }
        }
        return undefined;
      }),
    );
    const failure = failures.find((message) => message !== undefined);
    if (failure) throw new Error(failure);
  }
  return sizes;
}
