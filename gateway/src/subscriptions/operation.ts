import { createHash } from 'node:crypto';
import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { ErrorCode } from '../errors/codes.ts';
import type { ListSizes } from '../limits/measure.ts';
import { exceededLimit, type OperationLimits } from '../limits/operation-limits.ts';
import { createDocumentCache, type DocumentCacheLimits } from './document-cache.ts';

/** A subscribe request as either transport receives it (a graphql-ws payload, an SSE request's parameters). */
export interface OperationPayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
}

export interface OperationAdmissionOptions {
  /** Read per subscription: a supergraph reload changes it (and empties the document cache). */
  schema: () => GraphQLSchema;
  limits: OperationLimits;
  listSizes: () => ListSizes;
  maxTokens: number;
  introspection: boolean;
  documentCache: DocumentCacheLimits;
  /** HTTP's first look at a request (trusted documents, variable bounds): edits the payload, or returns errors. */
  admitOperation?: (payload: OperationPayload) => GraphQLError[] | undefined;
}

/** A subscription ready for the engine: parsed, validated, its variables coerced, within every limit. */
export interface AdmittedOperation {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName?: string | null;
  variables: Record<string, unknown>;
}

export type OperationVerdict =
  | { admitted: AdmittedOperation }
  /**
   * `notSubscription`: a query or mutation; `unresolved`: no single operation to run (an unknown
   * `operationName`). Neither is validated here: a transport may hand either to the HTTP path, which validates
   * and answers it as it does (or refuse it with these errors).
   */
  | {
      errors: readonly GraphQLError[];
      notSubscription?: true;
      unresolved?: true;
      /**
       * An empty query (graphql-ws requires one) that trusted documents did not fill in: a hash-only persisted
       * query, which only the HTTP path can look up (APQ), or a request without a document.
       */
      noDocument?: true;
    };

const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: ErrorCode.BadRequest } });

/** The code HTTP would give the same error; "did you mean" hints go, as over HTTP. */
const coded = (error: GraphQLError, code: string) =>
  new GraphQLError(error.message.replace(/ Did you mean .*$/, ''), { extensions: { ...error.extensions, code: error.extensions.code ?? code } });

/**
 * What a subscription passes before it starts, whichever transport brought it: HTTP's first look (trusted
 * documents, variable bounds), parse limits, validation (no introspection in production), one operation to
 * run, variable coercion, then depth, alias, directive and cost limits, with the codes HTTP gives. Parsed,
 * validated documents are cached across transports: thousands of clients send the same few.
 */
export function createOperationAdmission(options: OperationAdmissionOptions) {
  const rules = options.introspection ? specifiedRules : [...specifiedRules, NoSchemaIntrospectionCustomRule];
  const documents = createDocumentCache(options.documentCache);
  let validatedAgainst: GraphQLSchema | undefined;

  return {
    documentCache: () => documents.stats(),
    /** Edits the payload in place (a trusted document's text, unknown variables dropped), as graphql-ws hands it on. */
    admit(payload: OperationPayload): OperationVerdict {
      const refused = options.admitOperation?.(payload);
      if (refused) return { errors: refused };
      const schema = options.schema();
      // Documents were validated against the schema served when they came: another one validates them afresh.
      if (schema !== validatedAgainst) {
        documents.clear();
        validatedAgainst = schema;
      }
      const documentKey = createHash('sha256').update(payload.query).digest('base64url');
      let document = documents.get(documentKey);
      let operation: OperationDefinitionNode | null | undefined;
      if (!document) {
        let parsed: DocumentNode;
        try {
          parsed = parse(payload.query, { maxTokens: options.maxTokens, noLocation: true });
        } catch (error) {
          const errors = [coded(error instanceof GraphQLError ? error : badRequest('The query could not be parsed'), 'GRAPHQL_PARSE_FAILED')];
          return payload.query === '' ? { errors, noDocument: true } : { errors };
        }
        // Which operation runs is read before validation: a query or mutation (or no single operation) goes to
        // the HTTP path, which validates it with its own rules and messages. It is neither validated twice nor
        // kept in this cache, which holds the subscriptions' documents.
        operation = getOperationAST(parsed, payload.operationName);
        if (operation?.operation === 'subscription') {
          const errors = validate(schema, parsed, rules);
          if (errors.length > 0) return { errors: errors.map((error) => coded(error, 'GRAPHQL_VALIDATION_FAILED')) };
          documents.set(documentKey, payload.query, parsed);
        }
        document = parsed;
      } else {
        operation = getOperationAST(document, payload.operationName);
      }
      if (!operation) return { errors: [badRequest('The document names no single operation to run')], unresolved: true };
      if (operation.operation !== 'subscription') return { errors: [badRequest('Only subscriptions are served here; send queries and mutations over HTTP')], notSubscription: true };
      // Variables are coerced to their declared types first, as over HTTP: what goes upstream is what was checked.
      const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], payload.variables ?? {}, { maxErrors: 20 });
      if (coerced.errors) return { errors: coerced.errors.map((error) => coded(error, 'BAD_USER_INPUT')) };
      const exceeded = exceededLimit(options.limits, options.listSizes(), schema, document, operation, coerced.coerced);
      if (exceeded) return { errors: [exceeded] };
      return { admitted: { document, operation, operationName: payload.operationName, variables: coerced.coerced } };
    },
  };
}

export type OperationAdmission = ReturnType<typeof createOperationAdmission>;

/** Errors of an event masked by the gateway's formatError, as over HTTP; the result itself is never edited (it is shared). */
export function maskResult(result: ExecutionResult, formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError): ExecutionResult {
  if (!result.errors?.length) return result;
  return { ...result, errors: result.errors.map((error) => formatError((error as GraphQLError).toJSON?.() ?? error, error) as GraphQLError) };
}

/** The expiry (ms) of a bearer token the authenticator accepted: read the way it reads the header. */
export function tokenExpiry(authorization: string): number | undefined {
  const token = /^Bearer ([A-Za-z0-9\-_.]+)$/.exec(authorization.trim())?.[1];
  try {
    const payload = JSON.parse(Buffer.from(token?.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
