/** Every code the gateway itself returns. Codes from subgraphs pass through; anything else is masked. */
export enum ErrorCode {
  /** HTTP 401: a bearer token that is malformed, expired, wrongly signed or not for this graph. */
  Unauthenticated = 'UNAUTHENTICATED',
  /** HTTP 503: the key set that verifies tokens could not be fetched; the token may be fine. */
  AuthUnavailable = 'AUTH_UNAVAILABLE',
  /**
   * HTTP 429, with Retry-After: this client sent more than RATE_LIMIT_MAX requests per window. Over graphql-ws,
   * each sign-in and each subscribe message counts as a request: a refused subscribe gets this code (the message
   * says when to retry), a refused sign-in closes the socket with 4429.
   */
  RateLimited = 'RATE_LIMITED',
  /** HTTP 400: the operation nests deeper than MAX_DEPTH. */
  DepthLimitExceeded = 'DEPTH_LIMIT_EXCEEDED',
  /** HTTP 400: the operation has more aliases than MAX_ALIASES. */
  AliasLimitExceeded = 'ALIAS_LIMIT_EXCEEDED',
  /** HTTP 400: the operation uses more directives than MAX_DIRECTIVES. */
  DirectiveLimitExceeded = 'DIRECTIVE_LIMIT_EXCEEDED',
  /** HTTP 400: the operation could return more than MAX_COST fields. */
  CostLimitExceeded = 'COST_LIMIT_EXCEEDED',
  /**
   * A subgraph could not be reached or failed; the fields it owns are null. `serviceName` names it. Within a
   * subscription event the event is still delivered (partial), and the stream goes on.
   */
  SubgraphUnavailable = 'SUBGRAPH_UNAVAILABLE',
  /** A subgraph did not answer within SUBGRAPH_TIMEOUT_MS. */
  SubgraphTimeout = 'SUBGRAPH_TIMEOUT',
  /** A subscription was sent as a plain HTTP request. */
  SubscriptionOverHttp = 'SUBSCRIPTION_OVER_HTTP',
  /**
   * Over graphql-ws, ends the stream: a subscription fell too far behind and was ended; the client resumes with
   * `after`.
   */
  EventsOverflow = 'EVENTS_OVERFLOW',
  /**
   * Over graphql-ws, ends the stream: the subgraph that owns the subscription could not be reached again (after
   * retries) or refused it; the client resubscribes with `after`, with a backoff. Apart from SUBGRAPH_UNAVAILABLE,
   * which within an event only means fields of a subgraph that is down are null, and the stream goes on.
   */
  StreamUnavailable = 'STREAM_UNAVAILABLE',
  /**
   * Ends a subscription stream: the gateway now serves a supergraph in which the subscription's operation no
   * longer validates (a field it selects was removed). Subscribing again with the same document would be
   * refused; the client needs the new schema.
   */
  SchemaChanged = 'SCHEMA_CHANGED',
  /**
   * Over graphql-ws, refuses a subscription: more than WS_MAX_SUBSCRIPTIONS_PER_SOCKET on its socket, or
   * WS_MAX_SUBSCRIPTIONS_PER_VIEWER / _PER_ADDRESS, or WS_MAX_DOCUMENT_BYTES_PER_CLIENT of documents, for its
   * client on this replica. Over the rate limit it is RATE_LIMITED; either way, end one first or retry later.
   */
  TooManySubscriptions = 'TOO_MANY_SUBSCRIPTIONS',
  /** Over graphql-ws: an operation that is not a single subscription (queries and mutations go over HTTP). */
  BadRequest = 'BAD_REQUEST',
  /** HTTP 400, trusted documents: no document of the manifest has the persisted query's sha256Hash. */
  PersistedQueryNotFound = 'PERSISTED_QUERY_NOT_FOUND',
  /** HTTP 400: persistedQuery.sha256Hash is not the sha256 of the query sent with it. */
  PersistedQueryHashMismatch = 'PERSISTED_QUERY_HASH_MISMATCH',
  /** HTTP 400, trusted documents: a query whose text is not in the manifest. */
  OperationNotTrusted = 'OPERATION_NOT_TRUSTED',
  /**
   * A field `@authenticated`, `@requiresScopes` or `@policy` guards, and the viewer lacks what it asks: it is
   * answered null with this error at its path (the rest of the answer still arrives), and no subgraph is asked.
   */
  Forbidden = 'FORBIDDEN',
  Internal = 'INTERNAL_SERVER_ERROR',
}

/**
 * Codes a subgraph returns on purpose, whose messages were written for clients. A downstream error with any
 * other code is masked, so a subgraph that puts SQL or a URL in an error under a code of its own cannot leak
 * it. Deployments with other subgraphs extend the list (PUBLIC_ERROR_CODES).
 */
export const DOWNSTREAM_PUBLIC_CODES: readonly string[] = [
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'EMAIL_TAKEN',
  'ORDER_NOT_CANCELLABLE',
  'SUBGRAPH_UNAVAILABLE',
  'DATABASE_UNAVAILABLE',
  'VALUE_OUT_OF_RANGE',
  'USER_NOT_FOUND',
  'CURSOR_EXPIRED',
  'EVENTS_UNAVAILABLE',
  'IDEMPOTENCY_KEY_REUSED',
  'IDEMPOTENCY_KEY_IN_PROGRESS',
];
