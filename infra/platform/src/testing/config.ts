import type { z } from 'zod';
import { ConfigError, parseConfig, type Env } from '../config.ts';

/** Every problem parseConfig reports for `env`, as an operator would read it; [] when the config is valid. */
export function configIssues(schema: z.ZodType, env: Env): string[] {
  try {
    parseConfig(schema, env);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues;
  }
}
