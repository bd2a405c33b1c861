import type { IncomingMessage } from 'node:http';
import { HttpError, IDEMPOTENCY_KEY_HEADER, InvalidIdempotencyKeyError, parseIdempotencyKey } from '@fed/platform';
import { ErrorCode } from '../errors/codes.ts';

/**
 * The client's `Idempotency-Key`, checked before anything runs: a malformed one is refused with 400, rather than
 * quietly ignored, since a client sending it counts on its retries being safe. Only mutations use it; it reaches
 * the subgraphs inside the identity the gateway signs, never as a header of its own.
 */
export function idempotencyKeyOf(req: IncomingMessage): string | undefined {
  try {
    return parseIdempotencyKey(req.headers[IDEMPOTENCY_KEY_HEADER]);
  } catch (error) {
    if (error instanceof InvalidIdempotencyKeyError) throw new HttpError(400, ErrorCode.BadRequest, error.message);
    throw error;
  }
}
