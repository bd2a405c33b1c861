import { pino, type Logger } from 'pino';
import { IDENTITY_HEADER } from './identity/internal-token.ts';

export type { Logger };

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where lines go (tests capture them); stdout by default. */
  destination?: NodeJS.WritableStream;
}

/** Credentials that must never reach the logs, wherever a log call puts them. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  `req.headers["${IDENTITY_HEADER}"]`,
  'headers.authorization',
  'headers.cookie',
  `headers["${IDENTITY_HEADER}"]`,
  'connectionParams.authorization',
  'connectionParams.Authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
];

export function createLogger({ name, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination ?? process.stdout,
  );
}
