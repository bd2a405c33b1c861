/** Every code this subgraph returns on purpose. Anything else reaching a client is masked as INTERNAL_SERVER_ERROR. */
export enum ErrorCode {
  BadUserInput = 'BAD_USER_INPUT',
  NotFound = 'NOT_FOUND',
  EmailTaken = 'EMAIL_TAKEN',
  /** The viewer may not read this field or run this mutation; the field is null, nothing was written. */
  Forbidden = 'FORBIDDEN',
  /** HTTP 401: the request carried no valid signature from the gateway or a trusted service. */
  Unauthenticated = 'UNAUTHENTICATED',
  /** This subgraph's database could not be reached; nothing was changed. */
  DatabaseUnavailable = 'DATABASE_UNAVAILABLE',
  /** `userEvents(after:)` names an event older than the retention window: refetch, then subscribe without `after`. */
  CursorExpired = 'CURSOR_EXPIRED',
  /** The event stream could not be reached, so a subscription could not start; try again. */
  EventsUnavailable = 'EVENTS_UNAVAILABLE',
  /** The Idempotency-Key was already used for a different request (operation, variables or arguments); nothing was written. */
  IdempotencyKeyReused = 'IDEMPOTENCY_KEY_REUSED',
  /** A request with this Idempotency-Key is still running; retry later with the same key. Nothing was written. */
  IdempotencyKeyInProgress = 'IDEMPOTENCY_KEY_IN_PROGRESS',
  Internal = 'INTERNAL_SERVER_ERROR',
}
