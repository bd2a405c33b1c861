/** Every code the gateway itself returns. Codes from subgraphs pass through; anything else is masked. */
export enum ErrorCode {
  /** A subgraph could not be reached or failed; the fields it owns are null. `serviceName` names it. */
  SubgraphUnavailable = 'SUBGRAPH_UNAVAILABLE',
  /** A subgraph did not answer within SUBGRAPH_TIMEOUT_MS. */
  SubgraphTimeout = 'SUBGRAPH_TIMEOUT',
  /** A subscription was sent as a plain HTTP request. */
  SubscriptionOverHttp = 'SUBSCRIPTION_OVER_HTTP',
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
];
