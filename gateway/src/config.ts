import { fileURLToPath } from 'node:url';
import { logLevel, milliseconds, nodeEnv, port, redisUrl } from '@fed/platform';
import { z } from 'zod';

/** `users=http://users:4001/graphql,orders=http://orders:4002/graphql` → { users: ..., orders: ... } */
const subgraphUrls = z
  .string()
  .transform((value, ctx) => {
    const urls: Record<string, string> = {};
    for (const pair of value.split(',').map((part) => part.trim()).filter(Boolean)) {
      const [name, url] = pair.split(/=(.*)/s, 2);
      if (!name || !url || !URL.canParse(url)) {
        ctx.addIssue({ code: 'custom', message: `"${pair}" is not name=url` });
        continue;
      }
      urls[name.trim()] = url.trim();
    }
    return urls;
  })
  .default({});

const origins = z
  .string()
  .transform((value): string[] | '*' => (value.trim() === '*' ? '*' : value.split(',').map((o) => o.trim()).filter(Boolean)))
  .optional();

export const DEFAULT_SUPERGRAPH_PATH = fileURLToPath(new URL('../../schema/supergraph.graphql', import.meta.url));

export const gatewayConfigSchema = z.object({
  GATEWAY_PORT: port(4000),
  HOST: z.string().optional(),
  SUPERGRAPH_PATH: z.string().default(DEFAULT_SUPERGRAPH_PATH),
  SUBGRAPH_URLS: subgraphUrls,
  SUBGRAPH_TIMEOUT_MS: milliseconds(10_000),
  /** Unset: in-memory cache, private to this process. */
  REDIS_URL: redisUrl.optional(),
  CORS_ORIGINS: origins,
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Extra subgraph error codes (comma-separated) whose messages may reach clients, for other supergraphs. */
  PUBLIC_ERROR_CODES: z
    .string()
    .transform((value) => value.split(',').map((code) => code.trim()).filter(Boolean))
    .default([]),
  LOG_LEVEL: logLevel,
  NODE_ENV: nodeEnv,
});

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
