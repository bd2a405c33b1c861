/** Every code this subgraph returns on purpose. Anything else reaching a client is masked as INTERNAL_SERVER_ERROR. */
export enum ErrorCode {
  BadUserInput = 'BAD_USER_INPUT',
  NotFound = 'NOT_FOUND',
  /** placeOrder for a user that does not exist, or was deleted; nothing was written. */
  UserNotFound = 'USER_NOT_FOUND',
  OrderNotCancellable = 'ORDER_NOT_CANCELLABLE',
  /** The viewer may not read this field or run this mutation; the field is null, nothing was written. */
  Forbidden = 'FORBIDDEN',
  /** HTTP 401: the request carried no valid signature from the gateway. */
  Unauthenticated = 'UNAUTHENTICATED',
  /**
   * A new deployment could not yet take its snapshot of users from the users subgraph, so it cannot tell who
   * exists; nothing was written. It keeps trying.
   */
  SubgraphUnavailable = 'SUBGRAPH_UNAVAILABLE',
  /** A value exists but does not fit its GraphQL type (a lifetime total beyond a 32-bit Int). */
  ValueOutOfRange = 'VALUE_OUT_OF_RANGE',
  /** This subgraph's database could not be reached; nothing was changed. */
  DatabaseUnavailable = 'DATABASE_UNAVAILABLE',
  /** The Idempotency-Key was already used for a different request (operation, variables or arguments); nothing was written. */
  IdempotencyKeyReused = 'IDEMPOTENCY_KEY_REUSED',
  /** A request with this Idempotency-Key is still running; retry later with the same key. Nothing was written. */
  IdempotencyKeyInProgress = 'IDEMPOTENCY_KEY_IN_PROGRESS',
  Internal = 'INTERNAL_SERVER_ERROR',
}
