import { createHash } from 'node:crypto';
import type { HeaderMap } from '@apollo/server';
import Negotiator from 'negotiator';
import type { Viewer } from '@fed/platform';

/** What identifies a GraphQL request's answer, read from the HTTP request before GraphQL runs. */
export interface CacheableRequest {
  /** sha256 of the document (hex): the APQ hash, so a hash-only APQ request finds the same entry. */
  documentHash: string;
  operationName: string;
  /** Variables with sorted keys: `{a, b}` and `{b, a}` are one request. */
  variables: string;
  /** application/json or application/graphql-response+json, chosen from Accept as Apollo does. */
  contentType: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const GRAPHQL_RESPONSE_TYPE = 'application/graphql-response+json; charset=utf-8';
const CALLBACK_TYPE = 'application/json; callbackSpec=1.0; charset=utf-8';
const SHA256_HEX = /^[0-9a-f]{64}$/;
// A cheap look at the document: writes and streams are never answered from the cache, so skip the lookup.
const NOT_A_QUERY = /^(?:\s|,|#[^\n]*\n)*(?:mutation|subscription)\b/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const parseJsonParam = (text: string | null): unknown => {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return Symbol.for('invalid');
  }
};

const essence = (contentType: string | undefined) => contentType?.split(';')[0]?.trim().toLowerCase();

/** Apollo's CSRF rule for requests a browser could send without a preflight (GET, simple content types). */
function passesCsrfCheck(headers: HeaderMap): boolean {
  const type = essence(headers.get('content-type'));
  if (type && !['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'].includes(type)) return true;
  return Boolean(headers.get('x-apollo-operation-name') || headers.get('apollo-require-preflight'));
}

/**
 * Reads a request the cache may answer: a POST with a JSON body or a GET, one operation, no incremental
 * delivery. Anything unusual (invalid JSON, a batch, a hash that does not match the query, a CSRF-blocked
 * GET, an Accept header Apollo would refuse) returns undefined, and Apollo answers it as usual.
 */
export function readCacheableRequest(method: string, headers: HeaderMap, search: string, body: unknown): CacheableRequest | undefined {
  // Only what Apollo would surely execute is answered here; anything it might refuse goes to Apollo.
  if (!passesCsrfCheck(headers)) return undefined;
  let fields: { query?: unknown; operationName?: unknown; variables?: unknown; extensions?: unknown };
  if (method === 'POST') {
    if (essence(headers.get('content-type')) !== 'application/json') return undefined;
    if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
    fields = body;
  } else if (method === 'GET') {
    // A content type on a GET, a repeated parameter or a browser asking for HTML (the landing page).
    if (headers.get('content-type') !== undefined || /text\/html/i.test(headers.get('accept') ?? '')) return undefined;
    const params = new URLSearchParams(search);
    if (new Set(params.keys()).size !== [...params.keys()].length) return undefined;
    fields = {
      query: params.get('query') ?? undefined,
      operationName: params.get('operationName') ?? undefined,
      variables: parseJsonParam(params.get('variables')),
      extensions: parseJsonParam(params.get('extensions')),
    };
  } else {
    return undefined;
  }

  const { query, operationName, variables, extensions } = fields;
  if (query !== undefined && typeof query !== 'string') return undefined;
  if (operationName !== undefined && operationName !== null && (typeof operationName !== 'string' || operationName === '')) return undefined;
  if (variables !== undefined && variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) return undefined;
  if (extensions !== undefined && extensions !== null && (typeof extensions !== 'object' || Array.isArray(extensions))) return undefined;

  const persistedQuery = (extensions as { persistedQuery?: { sha256Hash?: unknown; version?: unknown } } | undefined)?.persistedQuery;
  if (persistedQuery !== undefined && persistedQuery?.version !== 1) return undefined;
  const persisted = persistedQuery?.sha256Hash;
  let documentHash: string;
  if (typeof query === 'string') {
    if (NOT_A_QUERY.test(query)) return undefined;
    documentHash = sha256(query);
    if (persisted !== undefined && persisted !== documentHash) return undefined;
  } else if (typeof persisted === 'string' && SHA256_HEX.test(persisted)) {
    documentHash = persisted;
  } else {
    return undefined;
  }

  const accept = headers.get('accept');
  // The same negotiation Apollo runs, so a hit carries the content type a miss would have.
  const contentType = accept ? new Negotiator({ headers: { accept } }).mediaType([JSON_TYPE, GRAPHQL_RESPONSE_TYPE, CALLBACK_TYPE]) : JSON_TYPE;
  if (!contentType || contentType === CALLBACK_TYPE) return undefined;

  return { documentHash, operationName: operationName ?? '', variables: stableJson(variables ?? {}), contentType };
}

/**
 * The cache keys to look in, most specific first: the viewer's private entry (per verified `sub` and role, so
 * an admin token's answers never reach the same user's ordinary token), then the public one. Anonymous
 * viewers have no private key at all.
 */
export function cacheKeys(schemaId: string, request: CacheableRequest, viewer: Viewer | null): { public: string; private?: string } {
  const base = `${schemaId}\0${request.documentHash}\0${request.operationName}\0${request.variables}`;
  const shared = sha256(base);
  // Both keys carry the request's hash as a hash tag: on a Redis Cluster they land in one bucket, and a lookup
  // of the two is one script on one node instead of one on each of two.
  return {
    public: `public:{${shared}}`,
    private: viewer ? `private:{${shared}}:${sha256(`${base}\0${viewer.userId}\0${viewer.role}`)}` : undefined,
  };
}

/** Entries belong to one schema and one set of limits: a new supergraph or a lower limit starts afresh. */
export const schemaIdOf = (...parts: string[]) => sha256(parts.join('\0')).slice(0, 16);
