import type { GraphQLFormattedError } from 'graphql';

export interface GraphQLResponse<TData = Record<string, unknown>> {
  status: number;
  data?: TData | null;
  errors?: GraphQLFormattedError[];
  headers: Headers;
}

/** A minimal real-HTTP GraphQL client for tests: the same request a browser would send. */
export async function graphql<TData = Record<string, unknown>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GraphQLResponse<TData>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  let body: { data?: TData | null; errors?: GraphQLFormattedError[] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`Non-JSON response (${response.status}): ${text.slice(0, 200)}`);
  }
  return { status: response.status, ...body, headers: response.headers };
}

/** Every error code in a response, for assertions that read like the contract. */
export const errorCodes = (response: { errors?: readonly GraphQLFormattedError[] }) =>
  (response.errors ?? []).map((error) => error.extensions?.code);
