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
