import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  name: string;
  level?: string;
}

export function createLogger({ name, level = 'info' }: LoggerOptions): Logger {
  return pino({
    name,
    level,
    // Never let credentials in URLs or auth headers reach the logs.
    redact: { paths: ['req.headers.authorization', '*.password'], censor: '[redacted]' },
  });
}
