import type { ApolloServerOptions, BaseContext } from '@apollo/server';
import type { KeyValueCache, Logger, RateLimiter } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';
import type { Refusal } from '../limits/variables.ts';
import { boundedApqStore, DEFAULT_APQ_POLICY, type ApqPolicy } from './apq-store.ts';
import { sha256Hex, type TrustedDocument, type TrustedDocuments } from './manifest.ts';

/**
 * - `off`: every request carries its document; a persisted-query extension is refused (PERSISTED_QUERY_NOT_SUPPORTED).
 * - `apq`: automatic persisted queries, any client may register a document, within the store's bounds.
 * - `trusted`: only the manifest's documents run, sent by hash or in full; nothing is ever stored.
 */
export type PersistedDocumentsOptions =
  | { mode: 'off' }
  | { mode: 'apq'; policy?: Partial<ApqPolicy> }
  | { mode: 'trusted'; documents: TrustedDocuments };

/** The parts of a GraphQL request this check reads (a POST body, or a GET's parameters). */
export interface OperationFields {
  query?: unknown;
  extensions?: unknown;
}

/** What the check found: the trusted document the request names (trusted mode), or nothing to add. */
export interface PersistedDocumentMatch {
  trusted?: TrustedDocument;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const refuse = (code: string, message: string): Refusal => ({ status: 400, code, message });

export interface PersistedDocuments {
  /** Apollo Server's `persistedQueries` option. */
  apolloOption: ApolloServerOptions<BaseContext>['persistedQueries'];
  /**
   * Runs before anything else looks at the request (the response cache included): refuses a malformed or
   * mismatched persisted-query extension and, in trusted mode, any document outside the manifest.
   */
  check(fields: OperationFields): Refusal | PersistedDocumentMatch;
}

export function createPersistedDocuments(
  options: PersistedDocumentsOptions,
  deps: { cache: KeyValueCache<string>; limiter: RateLimiter; logger: Logger },
): PersistedDocuments {
  const apolloOption = (): PersistedDocuments['apolloOption'] => {
    if (options.mode === 'off') return false;
    if (options.mode === 'apq') {
      const policy = { ...DEFAULT_APQ_POLICY, ...options.policy };
      return { cache: boundedApqStore(deps.cache, policy, deps.limiter, deps.logger), ttl: policy.ttlSeconds };
    }
    // Apollo's hash-only lookups read the manifest; its writes (a request with both hash and body) go nowhere.
    const documents = options.documents;
    // Apollo prefixes the hash (`apq:`); the hash is always the key's last 64 characters.
    const manifest: KeyValueCache<string> = {
      get: async (key) => documents.get(key.slice(-64))?.body,
      set: async () => {},
      delete: async () => false,
    };
    return { cache: manifest, ttl: null };
  };

  return {
    apolloOption: apolloOption(),
    check({ query, extensions }) {
      const persisted = isRecord(extensions) ? extensions.persistedQuery : undefined;
      if (persisted !== undefined && options.mode !== 'off') {
        // Apollo answers these with a bare 400 or 500 and no code; a client's mistake deserves a stable one.
        if (!isRecord(persisted) || persisted.version !== 1) return refuse(ErrorCode.BadRequest, 'Only version 1 of the persistedQuery extension is supported');
        const hash = persisted.sha256Hash;
        if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) {
          return refuse(ErrorCode.BadRequest, 'persistedQuery.sha256Hash must be the sha256 of the document, in lowercase hex');
        }
        if (typeof query === 'string' && sha256Hex(query) !== hash) {
          return refuse(ErrorCode.PersistedQueryHashMismatch, 'persistedQuery.sha256Hash is not the sha256 of the query sent with it');
        }
        if (options.mode === 'apq') return {};
        const trusted = options.documents.get(hash);
        if (!trusted) return refuse(ErrorCode.PersistedQueryNotFound, 'No trusted document has this sha256Hash');
        return { trusted };
      }
      if (options.mode !== 'trusted') return {};
      // No query at all is Apollo's to refuse (BAD_REQUEST); any text is run only if the manifest holds it.
      if (typeof query !== 'string') return {};
      const trusted = options.documents.get(sha256Hex(query));
      if (!trusted) return refuse(ErrorCode.OperationNotTrusted, 'Only trusted documents run on this server, and this one is not among them');
      return { trusted };
    },
  };
}
