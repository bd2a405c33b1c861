import type { GraphQLFormattedError } from 'graphql';
import { IDENTITY_HEADER, signIdentity } from '../identity/internal-token.ts';
import type { Viewer } from '../identity/viewer.ts';

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
  return parseResponse<TData>(response);
}

async function parseResponse<TData>(response: Response): Promise<GraphQLResponse<TData>> {
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

export interface Signing {
  /** The receiving subgraph's secret and name. */
  secret: string;
  audience: string;
  /** Who the caller acts for; null for anonymous. */
  viewer: Viewer | null;
  caller?: string;
}

/** A POST to a subgraph with exactly the identity header the gateway would sign for this body. */
export function signedFetch(url: string, { secret, audience, viewer, caller = 'gateway' }: Signing, body: string, headers: Record<string, string> = {}) {
  const identity = signIdentity({ secret, caller, audience, viewer, body });
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity, ...headers }, body });
}

/** `graphql()` for a subgraph: the request is signed as the gateway acting for `signing.viewer`. */
export async function signedGraphql<TData = Record<string, unknown>>(
  url: string,
  signing: Signing,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResponse<TData>> {
  const response = await signedFetch(url, signing, JSON.stringify({ query, variables }));
  return parseResponse<TData>(response);
}
