// `npm run -s image:check`: builds the production image and proves it runs, through the gateway, twice:
//   1. the embedded default (the image's own command): one container, PGlite inside, in-memory cache and bus;
//   2. scaled out: a migrate job, a seed job, users, orders and two gateways as separate containers on this
//      machine's Postgres and Redis, with a write through one gateway read back through the other.
// No registry is needed: unless --image names one already built, the base is a local stand-in for
// node:20-bookworm-slim (scripts/local-base.sh), passed as the Dockerfile's NODE_IMAGE build argument.
// Figures (size, build and start-up times) go to stdout as JSON and to test-results/image-check.json.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mintToken } from '@fed/gateway';
import { createTestDatabase, freePort, graphql, testPostgresUrl, testRedisUrl, waitFor, type TestDatabase } from '@fed/platform/testing';
import { dockerEngine } from '../engine.ts';
import { serviceCommand, type ImageServiceName } from '../services.ts';

const HERE = import.meta.dirname;
const ROOT = join(HERE, '../../../..');
const { values: args } = parseArgs({ options: { image: { type: 'string' }, base: { type: 'string' }, keep: { type: 'boolean' } } });

const log = (line: string) => process.stderr.write(`${line}\n`);
const engine = dockerEngine(process.env);
const { docker, out: dockerOut } = engine;

const NESTED_QUERY = `query Nested { users(first: 5) { edges { node {
  id name email
  orders(first: 3) { edges { node { id status totalCents items { sku quantity unitPriceCents } } } }
} } } }`;
const secret = () => randomBytes(24).toString('base64url'); // 32 characters
const JWT = { secret: secret(), issuer: 'image-check', audience: 'federated-graph' };
const containers: string[] = [];
const figures: Record<string, unknown> = {};

/** Starts `service` from the image on the host's network; resolves with its name once it answers /readyz. */
async function start(image: string, service: ImageServiceName, env: Record<string, string>, port?: number, command?: string[]): Promise<{ name: string; readyMs: number }> {
  const name = `fed-check-${service}-${randomBytes(3).toString('hex')}`;
  // On the host's network: loopback only, as nothing outside this machine needs to reach the check's services.
  const envArgs = Object.entries({ LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env }).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
  const started = performance.now();
  dockerOut('run', '-d', '--name', name, '--network', 'host', ...envArgs, image, ...(command ?? serviceCommand(service)));
  containers.push(name);
  if (port === undefined) return { name, readyMs: 0 };
  await waitFor(async () => {
    const state = dockerOut('inspect', '-f', '{{.State.Status}}', name);
    if (state === 'exited') throw Object.assign(new Error(`${name} exited:\n${logsOf(name)}`), { fatal: true });
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    if (response.status !== 200) throw new Error(`${name} /readyz ${response.status}`);
  }, 90_000, 100).catch((error: Error) => {
    throw new Error(`${service} never became ready: ${error.message}\n${logsOf(name)}`);
  });
  return { name, readyMs: Math.round(performance.now() - started) };
}

/** A one-shot job (migrate, seed): runs to completion, and must succeed. */
function job(image: string, service: ImageServiceName, env: Record<string, string>, extra: string[] = []): void {
  const envArgs = Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
  const result = spawnSync(docker, ['run', '--rm', '--network', 'host', ...envArgs, image, ...serviceCommand(service), ...extra], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${service} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  log(`  ${service}: ${result.stderr.trim().split('\n').join('; ')}`);
}

const logsOf = (name: string) => spawnSync(docker, ['logs', '--tail', '40', name], { encoding: 'utf8' }).stderr ?? '';

/** SIGTERM through tini: the service must drain and exit 0 well within the grace period. */
function stop(name: string): { exitCode: number; stopMs: number } {
  const started = performance.now();
  dockerOut('stop', '-t', '30', name);
  const exitCode = Number(dockerOut('inspect', '-f', '{{.State.ExitCode}}', name));
  if (exitCode !== 0) throw new Error(`${name} exited with ${exitCode} on SIGTERM:\n${logsOf(name)}`);
  return { exitCode, stopMs: Math.round(performance.now() - started) };
}

function expectThat(condition: unknown, message: string, detail?: unknown): asserts condition {
  if (!condition) throw new Error(`${message}${detail === undefined ? '' : `: ${JSON.stringify(detail).slice(0, 800)}`}`);
}

interface UsersPage {
  users: { edges: { node: { id: string; name: string; orders: { edges: { node: { items: unknown[] } }[] } } }[] };
}

/** The product's two promises, through one gateway: the nested query, and writes that the next read sees. */
async function checkGateway(label: string, url: string, readBack: string = url): Promise<void> {
  const admin = { authorization: `Bearer ${await mintToken({ ...JWT, sub: '1', role: 'admin' })}` };
  const nested = await graphql<UsersPage>(url, NESTED_QUERY, {}, admin);
  const users = nested.data?.users.edges ?? [];
  expectThat(nested.status === 200 && !nested.errors, `${label}: the nested query failed`, nested);
  expectThat(users.length > 0 && users.some(({ node }) => node.orders.edges.some(({ node: order }) => order.items.length > 0)), `${label}: the nested query found no users with orders and items`, nested.data);

  const name = `Image check ${randomBytes(3).toString('hex')}`;
  const updated = await graphql<{ updateUser: { name: string } }>(url, 'mutation Rename($name: String!) { updateUser(id: "1", input: { name: $name }) { id name } }', { name }, admin);
  expectThat(updated.data?.updateUser.name === name, `${label}: updateUser failed`, updated);
  const placed = await graphql<{ placeOrder: { totalCents: number; user: { name: string } | null } }>(
    url,
    'mutation Place { placeOrder(input: { userId: "1", items: [{ sku: "IMG-1", quantity: 2, unitPriceCents: 150 }] }) { id totalCents user { name } } }',
    {},
    admin,
  );
  expectThat(placed.data?.placeOrder.totalCents === 300 && placed.data.placeOrder.user?.name === name, `${label}: placeOrder failed`, placed);

  // Another gateway replica (or the same one) must not serve a response cached before the write.
  const read = await graphql<{ user: { name: string; orders: { edges: { node: { items: { sku: string }[] } }[] } } }>(
    readBack,
    'query ReadBack { user(id: "1") { name orders(first: 50) { edges { node { items { sku } } } } } }',
    {},
    admin,
  );
  expectThat(read.data?.user.name === name, `${label}: the write was not visible on the read-back gateway`, read);
  expectThat(read.data.user.orders.edges.some(({ node }) => node.items.some((item) => item.sku === 'IMG-1')), `${label}: the new order was not visible`, read);
  log(`  ${label}: nested query, updateUser, placeOrder and the read-back all answered`);
}

/** What the image may add to its base, in MB (the README's image table states it). */
const IMAGE_BUDGET_MB = 150;

/** The packages this tree's compiled code can load: compiled as the image is, then followed (scripts/runtime-packages.mjs). */
function runtimePackages(): string[] {
  const tree = join(tmpdir(), `fed-image-check-${process.pid}`);
  try {
    const compile = spawnSync('node', [join(ROOT, 'infra/docker/scripts/compile.mjs'), '--out', tree], { encoding: 'utf8' });
    if (compile.status !== 0) throw new Error(`compiling failed:\n${compile.stderr}`);
    const found = spawnSync('node', [join(ROOT, 'infra/docker/scripts/runtime-packages.mjs'), '--tree', tree], { encoding: 'utf8', maxBuffer: 16 << 20 });
    if (found.status !== 0) throw new Error(`finding the runtime packages failed:\n${found.stderr}`);
    return found.stdout.split('\n').filter(Boolean);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

/** Lean: every package in the image is one a service loads, the explorer works without GraphiQL's packages, and the size is within budget. */
function checkLean(image: string, base: string | undefined): void {
  const shipped = dockerOut(
    'run', '--rm', '-v', `${join(ROOT, 'infra/docker/scripts')}:/tools:ro`, '--entrypoint', 'node', image, '/tools/runtime-packages.mjs', '--list', '/app/node_modules',
  ).split('\n').filter(Boolean);
  const loaded = new Set(runtimePackages());
  const unused = shipped.filter((name) => !loaded.has(name));
  expectThat(unused.length === 0, `packages no service loads must not ship: ${unused.join(', ')}`, unused);
  figures.packages = shipped.length;
  // The explorer's files were copied out of their packages at build time (compile.mjs), which the image does not install.
  const assets = dockerOut(
    'run', '--rm', '--entrypoint', 'node', image, '--input-type=module', '-e',
    "const { assetStore } = await import('/app/gateway/dist/explorer/assets.js'); const assets = await assetStore()(); console.log(Object.values(assets).filter((asset) => asset.body.length > 0).length, Object.keys(assets).length)",
  ).split(' ');
  expectThat(assets[0] === assets[1] && Number(assets[0]) > 0, 'the explorer must load every asset from the image', assets);
  if (base) {
    figures.baseMB = Math.round(engine.sizeBytes(base) / 1e6);
    figures.addedMB = Number(figures.imageMB) - Number(figures.baseMB);
    expectThat(Number(figures.addedMB) <= IMAGE_BUDGET_MB, `the image adds ${String(figures.addedMB)} MB to its base (budget: ${IMAGE_BUDGET_MB} MB)`, figures);
  }
  log(`lean: ${shipped.length} packages, all loaded by a service; the explorer's ${assets[1]} assets load; ${figures.addedMB ?? '?'} MB on the base`);
}

async function main(): Promise<void> {
  let image = args.image;
  let base = args.base;
  if (!image) {
    base ??= engine.localBase();
    image = 'federated-graph:check';
    log(`building ${image} on ${base}`);
    const started = performance.now();
    engine.build(image, ROOT, base);
    figures.buildSeconds = Math.round((performance.now() - started) / 100) / 10;
  }
  figures.imageBytes = engine.sizeBytes(image);
  figures.imageMB = Math.round(Number(figures.imageBytes) / 1e6);

  // What "lean" means here, checked on the image itself rather than trusted from the Dockerfile.
  const inspect = JSON.parse(dockerOut('image', 'inspect', image)) as { Config: { User: string; Entrypoint: string[] | null } }[];
  const config = inspect[0]?.Config;
  expectThat(config?.User === 'node', 'the image must run as the non-root user node', config);
  expectThat(config.Entrypoint?.[0]?.endsWith('tini'), 'tini must be the entrypoint (PID 1)', config);
  const contents = dockerOut(
    'run', '--rm', '--entrypoint', 'sh', image, '-c',
    'id -u; node --version; find /app -name "*.ts" -not -name "*.d.ts" -not -path "*/node_modules/*" | head -5; ' +
      'for p in tsx typescript vitest eslint turbo drizzle-kit esbuild @graphql-codegen/core; do [ -e node_modules/$p ] && echo "dev:$p"; done; true',
  ).split('\n');
  expectThat(contents[0] === '1000', 'containers must run as uid 1000', contents);
  expectThat(contents[1]?.startsWith('v20.'), 'the image must run Node 20', contents);
  expectThat(!contents.some((line) => line.endsWith('.ts')), 'TypeScript sources must not ship', contents);
  expectThat(!contents.some((line) => line.startsWith('dev:')), 'dev dependencies must not ship', contents);
  log(`image ${image}: ${figures.imageMB} MB, user node, tini, no TypeScript sources or dev dependencies`);
  checkLean(image, base);

  // 1. The embedded default: the image's own command, with only a JWT secret (production refuses the development one).
  const embeddedPort = await freePort();
  const [usersPort, ordersPort] = [await freePort(), await freePort()];
  const embedded = await start(image, 'stack', {
    GATEWAY_PORT: String(embeddedPort), USERS_PORT: String(usersPort), ORDERS_PORT: String(ordersPort),
    JWT_SECRET: JWT.secret, JWT_ISSUER: JWT.issuer, JWT_AUDIENCE: JWT.audience,
  }, embeddedPort, []);
  figures.embeddedReadyMs = embedded.readyMs;
  await checkGateway('embedded default', `http://127.0.0.1:${embeddedPort}/graphql`);
  figures.embeddedStop = stop(embedded.name);

  // 2. Scaled out on this machine's Postgres and Redis (a logical Redis db of its own, emptied first and last).
  const databases: TestDatabase[] = [await createTestDatabase('image_users'), await createTestDatabase('image_orders')];
  const redisUrl = new URL(testRedisUrl());
  redisUrl.pathname = '/13';
  const redisCli = (command: string) => spawnSync('redis-cli', ['-u', redisUrl.toString(), command], { encoding: 'utf8' });
  try {
    redisCli('FLUSHDB');
    const [usersDb, ordersDb] = databases as [TestDatabase, TestDatabase];
    const db = { USERS_DATABASE_URL: usersDb.url, ORDERS_DATABASE_URL: ordersDb.url };
    job(image, 'migrate', db);
    job(image, 'seed', db, ['--users', '20', '--orders-per-user', '3']);
    const secrets = { users: secret(), orders: secret(), ordersToUsers: secret() };
    const ports = { users: await freePort(), orders: await freePort(), gatewayA: await freePort(), gatewayB: await freePort() };
    const common = { REDIS_URL: redisUrl.toString(), DRAIN_DELAY_MS: '200' };
    const users = await start(image, 'users', {
      ...common, USERS_PORT: String(ports.users), USERS_DATABASE_URL: usersDb.url,
      USERS_SUBGRAPH_SECRET: secrets.users, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers,
    }, ports.users);
    const orders = await start(image, 'orders', {
      ...common, ORDERS_PORT: String(ports.orders), ORDERS_DATABASE_URL: ordersDb.url, USERS_URL: `http://127.0.0.1:${ports.users}/graphql`,
      ORDERS_SUBGRAPH_SECRET: secrets.orders, ORDERS_TO_USERS_SECRET: secrets.ordersToUsers,
    }, ports.orders);
    const gatewayEnv = (port: number) => ({
      ...common, GATEWAY_PORT: String(port),
      SUBGRAPH_URLS: `users=http://127.0.0.1:${ports.users}/graphql,orders=http://127.0.0.1:${ports.orders}/graphql`,
      SUBGRAPH_SECRETS: `users=${secrets.users},orders=${secrets.orders}`,
      JWT_SECRET: JWT.secret, JWT_ISSUER: JWT.issuer, JWT_AUDIENCE: JWT.audience,
    });
    const gatewayA = await start(image, 'gateway', gatewayEnv(ports.gatewayA), ports.gatewayA);
    const gatewayB = await start(image, 'gateway', gatewayEnv(ports.gatewayB), ports.gatewayB);
    figures.readyMs = { users: users.readyMs, orders: orders.readyMs, gateway: gatewayA.readyMs };
    // Warm gateway B's cache first, so that reading the write back through it proves the purge crossed replicas.
    await checkGateway('gateway B, before', `http://127.0.0.1:${ports.gatewayB}/graphql`);
    await checkGateway('scaled out: gateway A, read back on gateway B', `http://127.0.0.1:${ports.gatewayA}/graphql`, `http://127.0.0.1:${ports.gatewayB}/graphql`);
    figures.stopMs = { gatewayA: stop(gatewayA.name).stopMs, gatewayB: stop(gatewayB.name).stopMs, orders: stop(orders.name).stopMs, users: stop(users.name).stopMs };
  } finally {
    redisCli('FLUSHDB');
    await Promise.all(databases.map((database) => database.drop()));
  }
}

try {
  await main();
  figures.ok = true;
  log('image check passed');
} catch (error) {
  figures.ok = false;
  figures.error = (error as Error).message;
  log(`image check FAILED: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  if (!args.keep) for (const name of containers) spawnSync(docker, ['rm', '-f', name], { stdio: 'ignore' });
  mkdirSync(join(HERE, '../../test-results'), { recursive: true });
  writeFileSync(join(HERE, '../../test-results/image-check.json'), `${JSON.stringify({ at: new Date().toISOString(), postgres: new URL(testPostgresUrl()).host, ...figures }, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}
