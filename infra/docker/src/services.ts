import { gatewayConfigSchema, gatewayConfigShape } from '@fed/gateway/config';
import { GATEWAY_NODE_FLAGS } from '@fed/gateway/runtime';
import { ordersConfigSchema, ordersConfigShape } from '@fed/orders/config';
import { databaseToolsConfigSchema, stackConfigSchema } from '@fed/stack/config';
import { usersConfigSchema, usersConfigShape } from '@fed/users/config';
import type { z } from 'zod';

interface ImageService {
  /** The compiled entry point inside the image, relative to its WORKDIR (/app): `node <flags> <entry>`. */
  entry: string;
  /** Node flags it is tuned for, which every command that starts it passes. */
  nodeFlags?: readonly string[];
  /** The port it serves GraphQL, /healthz, /readyz and /metrics on; none for one-shot jobs. */
  port?: number;
  /** The schema its composition root parses the environment with. */
  config: z.ZodType;
  /** Every variable that schema reads. */
  keys: readonly string[];
}

const keysOf = (shape: { shape: Record<string, unknown> }) => Object.keys(shape.shape);

/**
 * What the one image runs, by the command that starts it. Compose, Kubernetes and the image check all start
 * these, and their tests check each deployment's environment against the same schemas the services parse.
 */
export const IMAGE_SERVICES = {
  gateway: { entry: 'gateway/dist/index.js', nodeFlags: GATEWAY_NODE_FLAGS, port: 4000, config: gatewayConfigSchema, keys: keysOf(gatewayConfigShape) },
  users: { entry: 'subgraphs/users/dist/index.js', port: 4001, config: usersConfigSchema, keys: keysOf(usersConfigShape) },
  orders: { entry: 'subgraphs/orders/dist/index.js', port: 4002, config: ordersConfigSchema, keys: keysOf(ordersConfigShape) },
  migrate: { entry: 'infra/stack/dist/cli/migrate.js', config: databaseToolsConfigSchema, keys: keysOf(databaseToolsConfigSchema) },
  seed: { entry: 'infra/stack/dist/cli/seed.js', config: databaseToolsConfigSchema, keys: keysOf(databaseToolsConfigSchema) },
  /** The embedded default (`npm start`): all three in one process; the image's default command. */
  stack: {
    entry: 'infra/stack/dist/index.js',
    port: 4000,
    config: stackConfigSchema,
    // It migrates at start: a direct connection for that when the databases sit behind PgBouncer.
    keys: [...new Set([...keysOf(usersConfigShape), ...keysOf(ordersConfigShape), ...keysOf(gatewayConfigShape), 'SEED_ON_FIRST_START', 'USERS_DATABASE_MIGRATION_URL', 'ORDERS_DATABASE_MIGRATION_URL'])],
  },
} as const satisfies Record<string, ImageService>;

export type ImageServiceName = keyof typeof IMAGE_SERVICES;

/** The command that starts a service as shipped: `node`, its flags, its entry. */
export function serviceCommand(name: ImageServiceName): string[] {
  const service: ImageService = IMAGE_SERVICES[name];
  return ['node', ...(service.nodeFlags ?? []), service.entry];
}

/** Which service a container command (`["node", "--flag", "gateway/dist/index.js", ...]`) starts, if any. */
export function serviceForCommand(command: readonly string[]): ImageServiceName | undefined {
  const [program, ...rest] = command;
  const entry = rest.find((arg) => !arg.startsWith('-'));
  if (program !== 'node' || !entry) return undefined;
  return (Object.keys(IMAGE_SERVICES) as ImageServiceName[]).find((name) => IMAGE_SERVICES[name].entry === entry);
}

/**
 * What is wrong with a command that starts `name`: a Node flag it ships with that the command leaves out, or
 * gives another value later (Node takes the last one).
 */
export function checkServiceCommand(name: ImageServiceName, command: readonly string[]): string[] {
  const service: ImageService = IMAGE_SERVICES[name];
  const flags = command.slice(1, command.indexOf(service.entry));
  const nameOf = (flag: string) => flag.split('=', 1)[0]!;
  const missing = (service.nodeFlags ?? []).filter((flag) => flags.findLast((given) => nameOf(given) === nameOf(flag)) !== flag);
  return missing.length > 0 ? [`${JSON.stringify(command)} starts ${name} without ${missing.join(' ')}`] : [];
}

/**
 * What is wrong with the environment a deployment gives a service: every error its config schema would
 * report at start-up, and every variable it sets that the service never reads (a typo, or a leftover).
 * Platform variables every container may carry are not reported as unknown.
 */
export function checkServiceEnv(name: ImageServiceName, env: Record<string, string>): string[] {
  const service: ImageService = IMAGE_SERVICES[name];
  const problems: string[] = [];
  // As parseConfig does: an empty value (VAR= in a shell or a compose file) means unset, so defaults apply.
  const parsed = service.config.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== '')));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${name}: ${issue.path.join('.') || '(config)'}: ${issue.message}`);
  }
  const known = new Set([...service.keys, ...PLATFORM_VARIABLES]);
  for (const key of Object.keys(env)) if (!known.has(key)) problems.push(`${name}: ${key} is set but ${name} never reads it`);
  return problems;
}

/** Read by Node itself or by libraries, not by the config schemas. */
const PLATFORM_VARIABLES = ['APOLLO_TELEMETRY_DISABLED', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'TZ'];
