import { GraphQLError } from 'graphql';
import { HttpError } from '@fed/platform';
import type { PersistedDocuments } from '../persisted-documents/persisted-documents.ts';
import { MAX_DOCUMENT_NESTING, nestingExceeds } from './nesting.ts';
import { admitVariables, variableNamesIn, type Refusal, type VariableLimits } from './variables.ts';

/** What this check reads of a request: a POST body, a GET's parameters, or a graphql-ws subscribe payload. */
interface OperationRequest {
  query?: unknown;
  variables?: unknown;
  extensions?: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const parseJsonParam = (text: string | null): unknown => {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

/**
 * The first look at a GraphQL request, before the response cache or Apollo parse anything: the persisted-
 * document rules (trusted documents only, a hash that matches its query), the document's bracket nesting,
 * and the bounds on variables, with the variables the document does not declare dropped. Over HTTP and
 * graphql-ws alike.
 */
export function createRequestAdmission(persisted: PersistedDocuments, limits: VariableLimits) {
  /** The request's variables to run with, the trusted document it names (if any), or why it is refused. */
  const admit = (request: OperationRequest): Refusal | { variables: unknown; trustedBody?: string } => {
    const match = persisted.check(request);
    if ('code' in match) return match;
    if (!match.trusted && typeof request.query === 'string' && nestingExceeds(request.query)) {
      return { status: 400, code: 'GRAPHQL_PARSE_FAILED', message: `The document nests brackets more than ${MAX_DOCUMENT_NESTING} levels deep` };
    }
    const declared = match.trusted?.declaredVariables ?? (typeof request.query === 'string' && isRecord(request.variables) ? variableNamesIn(request.query) : undefined);
    const admitted = admitVariables(request.variables, declared, limits);
    if ('code' in admitted) return admitted;
    return { variables: admitted.variables, trustedBody: match.trusted?.body };
  };

  return {
    /**
     * The HTTP front's `inspect`: refuses with an HttpError, or returns the request to go on with (unknown
     * variables dropped). Anything it cannot read (not JSON, a batch, a repeated parameter) is left to Apollo.
     */
    http({ method, search, body }: { method: string; search: string; body: unknown }): { search: string; body: unknown } {
      if (method === 'POST') {
        if (!isRecord(body)) return { search, body };
        const admitted = admit(body);
        if ('code' in admitted) throw new HttpError(admitted.status, admitted.code, admitted.message);
        return { search, body: admitted.variables === body.variables ? body : { ...body, variables: admitted.variables } };
      }
      if (method !== 'GET') return { search, body };
      const params = new URLSearchParams(search);
      if (params.getAll('variables').length > 1 || params.getAll('query').length > 1 || params.getAll('extensions').length > 1) return { search, body };
      const variables = parseJsonParam(params.get('variables'));
      const admitted = admit({ query: params.get('query') ?? undefined, variables, extensions: parseJsonParam(params.get('extensions')) });
      if ('code' in admitted) throw new HttpError(admitted.status, admitted.code, admitted.message);
      if (admitted.variables === variables) return { search, body };
      params.set('variables', JSON.stringify(admitted.variables));
      return { search: `?${params.toString()}`, body };
    },

    /**
     * For graphql-ws's onSubscribe: the same rules. It edits the payload in place (a hash-only subscribe gets
     * its trusted document's text; unknown variables go) and returns the errors to answer with, if any.
     */
    subscription(payload: { query: string; variables?: Record<string, unknown> | null; extensions?: Record<string, unknown> | null }): GraphQLError[] | undefined {
      // graphql-ws requires a query string: a hash-only subscribe sends an empty one.
      const admitted = admit({ query: payload.query === '' ? undefined : payload.query, variables: payload.variables, extensions: payload.extensions });
      if ('code' in admitted) return [new GraphQLError(admitted.message, { extensions: { code: admitted.code } })];
      if (admitted.trustedBody !== undefined) payload.query = admitted.trustedBody;
      payload.variables = admitted.variables as Record<string, unknown> | null | undefined;
      return undefined;
    },
  };
}

export type RequestAdmission = ReturnType<typeof createRequestAdmission>;
