import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { checkServiceCommand, checkServiceEnv, IMAGE_SERVICES, serviceForCommand, type ImageServiceName } from '../src/services.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKER_COMPOSE = '/usr/bin/docker-compose';
const HAVE_COMPOSE = existsSync(DOCKER_COMPOSE);
const SECRETS = ['JWT_SECRET', 'USERS_SUBGRAPH_SECRET', 'ORDERS_SUBGRAPH_SECRET', 'ORDERS_TO_USERS_SECRET'] as const;
/** The only service that may publish a port. */
const LOAD_BALANCER = 'lb';
/** After the drain a service still closes Redis, Postgres and the exporter before it exits. */
const SHUTDOWN_MARGIN_MS = 2_000;
/** Settings compose sets to something other than the service's default, on purpose. */
const DELIBERATE = new Set([
  'NODE_ENV', 'USERS_DATABASE_URL', 'ORDERS_DATABASE_URL', 'REDIS_URL', 'USERS_URL', 'SUBGRAPH_URLS', 'TRUST_PROXY_HOPS',
  'JWT_ISSUER', 'JWT_AUDIENCE', ...SECRETS, 'SUBGRAPH_SECRETS',
]);
const PORT_VARIABLE: Partial<Record<ImageServiceName, string>> = { gateway: 'GATEWAY_PORT', users: 'USERS_PORT', orders: 'ORDERS_PORT' };

interface ComposeService {
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string>;
  healthcheck?: { test?: string[] | string };
  ports?: unknown[];
  stop_grace_period?: string;
}
interface ComposeConfig {
  services: Record<string, ComposeService>;
}

function composeConfig(env: Record<string, string>) {
  // A developer's .env next to the compose file, or their Docker config, must not leak into the check.
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    writeFileSync(join(dir, 'empty.env'), '');
    // Compose v2 leaves services of inactive profiles out of `config`; 1.29 keeps them. Either way: seed too.
    const argv = ['--env-file', join(dir, 'empty.env'), '--profile', 'seed', '-f', 'docker-compose.yml', 'config'];
    const result = spawnSync(DOCKER_COMPOSE, argv, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env },
      encoding: 'utf8',
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const secretValues = () => Object.fromEntries(SECRETS.map((name) => [name, randomBytes(30).toString('base64url')]));

/** The services compose starts from the project's image, by the image service their command runs. */
function imageServices(config: ComposeConfig) {
  return Object.entries(config.services)
    .filter(([, service]) => service.build !== undefined)
    .map(([composeName, service]) => {
      const command = typeof service.command === 'string' ? service.command.split(/\s+/) : (service.command ?? []);
      return { composeName, service, command, name: serviceForCommand(command), env: service.environment ?? {} };
    });
}

// docker-compose prints durations as written: `15s`, `1m30s`, `500ms`.
function durationMs(text: string | undefined): number {
  if (text === undefined) return 10_000; // Docker's default
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
  return [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)].reduce((sum, [, value, suffix]) => sum + Number(value) * unit[suffix ?? 's']!, 0);
}

/** `users=a,orders=b` as the gateway reads it. */
const namedValues = (text = '') =>
  Object.fromEntries(text.split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2) as [string, string]));

/** What the services would reject, plus what would break between them; empty when the file is right. */
function composeProblems(config: ComposeConfig): string[] {
  const problems: string[] = [];
  const services = imageServices(config);
  const byComposeName = new Map(services.map((entry) => [entry.composeName, entry]));
  const listenPort = (composeName: string) => {
    const entry = byComposeName.get(composeName);
    if (!entry?.name) return undefined;
    const { port }: { entry: string; port?: number } = IMAGE_SERVICES[entry.name];
    const variable = PORT_VARIABLE[entry.name];
    return variable ? Number(entry.env[variable] ?? port) : undefined;
  };
  const pointsAtService = (where: string, url: string) => {
    const { hostname, port, pathname } = new URL(url);
    const target = listenPort(hostname);
    if (target === undefined) problems.push(`${where}: ${url} is not a service of this file`);
    else if (Number(port) !== target || pathname !== '/graphql') problems.push(`${where}: ${url}, but ${hostname} serves http://${hostname}:${target}/graphql`);
  };

  for (const { composeName, service, command, name, env } of services) {
    if (!name) {
      problems.push(`${composeName}: command ${JSON.stringify(service.command)} starts none of the image's services`);
      continue;
    }
    problems.push(...checkServiceCommand(name, command).map((problem) => `${composeName}: ${problem}`));
    // The services read an empty variable (`${X:-}`) as unset, as parseConfig does.
    const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
    problems.push(...checkServiceEnv(name, set).map((problem) => `${composeName} (${problem})`));
    for (const key of Object.keys(env)) {
      if (!(key in set) && !(IMAGE_SERVICES[name].keys as readonly string[]).includes(key)) problems.push(`${composeName}: ${key} is set but never read`);
    }
    const port = listenPort(composeName);
    if (port === undefined) continue;
    if (env.NODE_ENV !== 'production') problems.push(`${composeName}: NODE_ENV is not production, so the production rules were not checked`);
    const test = [service.healthcheck?.test ?? []].flat().join(' ');
    const probed = /127\.0\.0\.1:(\d+)\/readyz/.exec(test)?.[1];
    if (Number(probed) !== port) problems.push(`${composeName}: healthcheck probes port ${probed ?? 'none'}, but it listens on ${port}`);
    const drainMs = Number(env.DRAIN_DELAY_MS || 0) + Number(env.DRAIN_GRACE_MS || 10_000);
    if (durationMs(service.stop_grace_period) < drainMs + SHUTDOWN_MARGIN_MS) {
      problems.push(`${composeName}: stop_grace_period ${service.stop_grace_period ?? '10s'} does not cover a drain of ${drainMs} ms`);
    }
  }

  for (const [composeName, service] of Object.entries(config.services)) {
    if (composeName !== LOAD_BALANCER && service.ports?.length) problems.push(`${composeName}: publishes a port; only ${LOAD_BALANCER} may`);
  }

  const env = (composeName: string) => byComposeName.get(composeName)?.env ?? {};
  const gateway = env('gateway');
  const urls = namedValues(gateway.SUBGRAPH_URLS);
  const secrets = namedValues(gateway.SUBGRAPH_SECRETS);
  const graphs = [...readFileSync(join(ROOT, 'schema/supergraph.graphql'), 'utf8').matchAll(/@join__graph\(name: "(\w+)"/g)].map((m) => m[1]);
  if (!isDeepStrictEqual(Object.keys(urls).sort(), graphs.sort())) problems.push(`gateway: SUBGRAPH_URLS names ${Object.keys(urls)}, the supergraph ${graphs}`);
  for (const [graph, url] of Object.entries(urls)) pointsAtService(`gateway: SUBGRAPH_URLS ${graph}`, url);
  if (env('orders').USERS_URL) pointsAtService('orders: USERS_URL', env('orders').USERS_URL!);

  const pairs: [string, string | undefined, string | undefined][] = [
    ['gateway SUBGRAPH_SECRETS users / users USERS_SUBGRAPH_SECRET', secrets.users, env('users').USERS_SUBGRAPH_SECRET],
    ['gateway SUBGRAPH_SECRETS orders / orders ORDERS_SUBGRAPH_SECRET', secrets.orders, env('orders').ORDERS_SUBGRAPH_SECRET],
    ['orders / users ORDERS_TO_USERS_SECRET', env('orders').ORDERS_TO_USERS_SECRET, env('users').ORDERS_TO_USERS_SECRET],
  ];
  for (const [what, signer, verifier] of pairs) if (!signer || signer !== verifier) problems.push(`${what}: the signer's and the verifier's secrets differ`);
  return problems;
}

describe.skipIf(!HAVE_COMPOSE)(
  HAVE_COMPOSE ? 'docker-compose.yml' : `docker-compose.yml: skipped, ${DOCKER_COMPOSE} is not installed (apt-get install docker-compose)`,
  () => {
    let config: ComposeConfig;
    beforeAll(() => {
      const result = composeConfig(secretValues());
      expect(result.status, result.stderr).toBe(0);
      config = parse(result.stdout) as ComposeConfig;
    });

    it('starts every image service it runs with a command the image knows', () => {
      expect(Object.fromEntries(imageServices(config).map(({ composeName, name }) => [composeName, name]))).toEqual({
        gateway: 'gateway',
        users: 'users',
        orders: 'orders',
        migrate: 'migrate',
        seed: 'seed',
      });
    });

    it('gives each service an environment it accepts, and wires the services to each other', () => {
      expect(composeProblems(config)).toEqual([]);
    });

    it("defaults every tunable setting to the service's own default", () => {
      for (const { composeName, name, env } of imageServices(config)) {
        if (!name) continue;
        const schema = IMAGE_SERVICES[name].config;
        const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
        const parsed = schema.parse(set) as Record<string, unknown>;
        for (const key of Object.keys(set).filter((key) => !DELIBERATE.has(key))) {
          const { [key]: _dropped, ...without } = set;
          expect([composeName, key, parsed[key]]).toEqual([composeName, key, (schema.parse(without) as Record<string, unknown>)[key]]);
        }
      }
    });

    // The checks above only mean something if they can fail.
    const clone = () => structuredClone(config);
    it.each([
      ['a misspelled variable', (c: ComposeConfig) => { c.services.users!.environment!.DRAIN_GRACE_MSS = '1' }, /users \(users: DRAIN_GRACE_MSS is set but users never reads it\)/],
      ['an invalid value', (c: ComposeConfig) => { c.services.gateway!.environment!.RESPONSE_CACHE = 'yes' }, /gateway \(gateway: RESPONSE_CACHE:/],
      ['a healthcheck on the wrong port', (c: ComposeConfig) => { c.services.orders!.healthcheck!.test = ['CMD', 'node', '-e', "fetch('http://127.0.0.1:4001/readyz')"] }, /orders: healthcheck probes port 4001, but it listens on 4002/],
      ['a published subgraph port', (c: ComposeConfig) => { c.services.users!.ports = ['4001:4001'] }, /users: publishes a port/],
      ['a subgraph URL to no service', (c: ComposeConfig) => { c.services.gateway!.environment!.SUBGRAPH_URLS = 'users=http://user:4001/graphql,orders=http://orders:4002/graphql' }, /http:\/\/user:4001\/graphql is not a service/],
      ['a secret the subgraph does not share', (c: ComposeConfig) => { c.services.users!.environment!.USERS_SUBGRAPH_SECRET = 'x'.repeat(40) }, /users USERS_SUBGRAPH_SECRET: the signer's and the verifier's secrets differ/],
      ['a drain longer than the grace period', (c: ComposeConfig) => { c.services.gateway!.environment!.DRAIN_DELAY_MS = '5000' }, /gateway: stop_grace_period 15s does not cover a drain of 15000 ms/],
      ['a command the image does not have', (c: ComposeConfig) => { c.services.migrate!.command = ['npm', 'run', 'db:migrate'] }, /migrate: command .* starts none/],
      ['a gateway without its Node flags', (c: ComposeConfig) => { c.services.gateway!.command = ['node', 'gateway/dist/index.js'] }, /gateway: .* starts gateway without --max-semi-space-size=64 --heap-growing-percent=50/],
      ['a gateway flag given again with another value', (c: ComposeConfig) => { c.services.gateway!.command = ['node', '--max-semi-space-size=64', '--heap-growing-percent=50', '--max-semi-space-size=16', 'gateway/dist/index.js'] }, /gateway: .* starts gateway without --max-semi-space-size=64$/m],
    ])('reports %s', (_what, breakIt, expected) => {
      const broken = clone();
      breakIt(broken);
      expect(composeProblems(broken).join('\n')).toMatch(expected);
    });

    it.each(SECRETS)('refuses to resolve without %s, naming it', (missing) => {
      const { [missing]: _omitted, ...others } = secretValues();
      const result = composeConfig(others);
      expect(result.status).not.toBe(0);
      // 1.29: `... in service "users": set X ...`; v2: `required variable X is missing a value`.
      expect(result.stderr).toMatch(new RegExp(`in service "[\\w-]+": set ${missing}\\b|required variable ${missing} is missing`));
    });
  },
);
