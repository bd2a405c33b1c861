/** Every code this subgraph returns on purpose. Anything else reaching a client is masked as INTERNAL_SERVER_ERROR. */
export enum ErrorCode {
  BadUserInput = 'BAD_USER_INPUT',
  NotFound = 'NOT_FOUND',
  EmailTaken = 'EMAIL_TAKEN',
  Internal = 'INTERNAL_SERVER_ERROR',
}
