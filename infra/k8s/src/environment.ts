import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { observabilitySettings } from '@fed/platform';
import { checkServiceCommand, checkServiceEnv, IMAGE_SERVICES, serviceForCommand, type ImageServiceName } from '../../docker/src/services.ts';
import { manifestId, type Manifest } from './kustomize.ts';
import { find, ofKind, selected, workloads, type Workload } from './objects.ts';

/** A container as it will run: which service its command starts, and its environment as Kubernetes builds it. */
export interface RunningContainer {
  workload: Workload;
  container: IContainer;
  where: string;
  /** What runs under the image's ENTRYPOINT: `args`, or the image's CMD without them. */
  argv: string[];
  service: ImageServiceName | undefined;
  env: Record<string, string>;
}

const DOCKERFILE = fileURLToPath(new URL('../../docker/Dockerfile', import.meta.url));

/** The final stage's exec-form ENTRYPOINT and CMD, which a container's `command` and `args` replace. */
export function imageStart(dockerfile = readFileSync(DOCKERFILE, 'utf8')): { entrypoint: string[]; cmd: string[] } {
  const lastStage = dockerfile.split(/^FROM\s/m).pop() ?? '';
  const instruction = (name: string): string[] => {
    const last = [...lastStage.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gm'))].at(-1)?.[1];
    return last === undefined ? [] : (JSON.parse(last) as string[]);
  };
  return { entrypoint: instruction('ENTRYPOINT'), cmd: instruction('CMD') };
}

/**
 * Each container's environment, in Kubernetes' order: service links (unless enableServiceLinks is false),
 * then envFrom, then env. `provided` names objects rendered elsewhere (the base's Secret comes from the
 * overlays): references to them are not reported, and their values are missing from the result.
 */
export function runningContainers(objects: readonly Manifest[], problems: string[], provided: readonly string[] = []): RunningContainer[] {
  const image = imageStart();
  return workloads(objects).flatMap((workload) =>
    workload.pod.containers.map((container) => {
      const where = `${workload.id}: container ${container.name}`;
      const env: Record<string, string> = workload.pod.enableServiceLinks === false ? {} : serviceLinks(objects, workload.owner);
      const lookup = (kind: 'ConfigMap' | 'Secret', name: string, key: string | undefined, optional: boolean | undefined) => {
        if (provided.includes(`${kind}/${name}`)) return {};
        const data = dataOf(objects, kind, name, workload.owner);
        if (!data) {
          if (!optional) problems.push(`${where}: ${kind} ${name} is not rendered`);
          return {};
        }
        if (key === undefined) return data;
        if (!(key in data)) {
          if (!optional) problems.push(`${where}: ${kind} ${name} has no key ${key}`);
          return {};
        }
        return { [key]: data[key] as string };
      };
      for (const from of container.envFrom ?? []) {
        const source = from.configMapRef
          ? lookup('ConfigMap', from.configMapRef.name ?? '', undefined, from.configMapRef.optional)
          : lookup('Secret', from.secretRef?.name ?? '', undefined, from.secretRef?.optional);
        for (const [key, value] of Object.entries(source)) env[`${from.prefix ?? ''}${key}`] = value;
      }
      for (const variable of container.env ?? []) {
        const { configMapKeyRef: cm, secretKeyRef: secret } = variable.valueFrom ?? {};
        if (variable.value?.includes('$(')) problems.push(`${where}: ${variable.name} uses $(VAR) expansion, which is not evaluated here`);
        if (variable.valueFrom?.fieldRef || variable.valueFrom?.resourceFieldRef) {
          problems.push(`${where}: ${variable.name}: field references are not evaluated here`);
        }
        const value = cm
          ? lookup('ConfigMap', cm.name ?? '', cm.key, cm.optional)[cm.key]
          : secret
            ? lookup('Secret', secret.name ?? '', secret.key, secret.optional)[secret.key]
            : (variable.value ?? '');
        if (value !== undefined) env[variable.name] = value;
      }
      const argv = container.command ? [...container.command, ...(container.args ?? [])] : (container.args ?? image.cmd);
      return { workload, container, where, argv, service: serviceForCommand(argv), env };
    }),
  );
}

function dataOf(objects: readonly Manifest[], kind: 'ConfigMap' | 'Secret', name: string, near: Manifest): Record<string, string> | undefined {
  if (kind === 'ConfigMap') {
    const configMap = find<IConfigMap>(objects, kind, name, near);
    return configMap && (configMap.data ?? {});
  }
  const secret = find<ISecret>(objects, kind, name, near);
  if (!secret) return undefined;
  const decoded = Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]);
  return { ...Object.fromEntries(decoded), ...secret.stringData };
}

/** The docker-link variables Kubernetes injects for every Service in the namespace (USERS_PORT=tcp://…). */
function serviceLinks(objects: readonly Manifest[], near: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of ofKind<IService>(objects, 'Service')) {
    if (s.metadata.namespace !== near.metadata.namespace) continue;
    const prefix = s.metadata.name.toUpperCase().replace(/-/g, '_');
    const ip = '10.96.0.10';
    const [first] = s.spec?.ports ?? [];
    if (!first) continue;
    env[`${prefix}_SERVICE_HOST`] = ip;
    env[`${prefix}_SERVICE_PORT`] = String(first.port);
    env[`${prefix}_PORT`] = `tcp://${ip}:${first.port}`;
    for (const port of s.spec?.ports ?? []) {
      const base = `${prefix}_PORT_${port.port}_TCP`;
      env[base] = `tcp://${ip}:${port.port}`;
      Object.assign(env, { [`${base}_PROTO`]: 'tcp', [`${base}_PORT`]: String(port.port), [`${base}_ADDR`]: ip });
      if (port.name) env[`${prefix}_SERVICE_PORT_${port.name.toUpperCase().replace(/-/g, '_')}`] = String(port.port);
    }
  }
  return env;
}

/**
 * What the config schemas leave optional but a cluster needs: without its DATABASE_URL a service silently
 * runs an embedded PGlite inside the pod, and without REDIS_URL replicas share no cache, events or pub/sub.
 */
const REQUIRED_IN_CLUSTER: Partial<Record<ImageServiceName, readonly string[]>> = {
  gateway: ['NODE_ENV', 'SUBGRAPH_URLS', 'REDIS_URL'],
  users: ['NODE_ENV', 'USERS_DATABASE_URL', 'REDIS_URL'],
  orders: ['NODE_ENV', 'ORDERS_DATABASE_URL', 'REDIS_URL', 'USERS_URL'],
  migrate: ['NODE_ENV', 'USERS_DATABASE_URL', 'ORDERS_DATABASE_URL'],
};

/** Each container starts a known service whose config schema accepts its environment, on the port it declares. */
export function environmentProblems(objects: readonly Manifest[], provided: readonly string[] = []): string[] {
  const problems: string[] = [];
  const running = runningContainers(objects, problems, provided);
  // With part of the environment rendered elsewhere, only the references can be checked.
  if (provided.length > 0) return problems;
  const { entrypoint } = imageStart();
  for (const { workload, container, where, argv, service, env } of running) {
    if (container.command && entrypoint.length > 0) {
      problems.push(`${where}: command replaces the image's ENTRYPOINT ${JSON.stringify(entrypoint)}; put the node command in args`);
    }
    if (!service || service === 'stack') {
      problems.push(`${where}: ${JSON.stringify(argv)} starts none of the services a cluster runs one per container`);
      continue;
    }
    problems.push(...checkServiceCommand(service, argv).map((problem) => `${where}: ${problem}`));
    problems.push(...checkServiceEnv(service, env).map((problem) => `${where}: ${problem}`));
    for (const key of REQUIRED_IN_CLUSTER[service] ?? []) if (!env[key]) problems.push(`${where}: ${key} is not set`);
    if (env.NODE_ENV !== undefined && env.NODE_ENV !== 'production') problems.push(`${where}: NODE_ENV is ${env.NODE_ENV}, not production`);
    const image = IMAGE_SERVICES[service];
    const defaultPort = 'port' in image ? image.port : undefined;
    if (workload.owner.kind === 'Deployment' && defaultPort !== undefined) {
      const listens = Number(env[`${service.toUpperCase()}_PORT`] ?? defaultPort);
      const declared = container.ports?.find((p) => p.name === 'http')?.containerPort;
      if (declared !== listens) problems.push(`${where}: ${service} listens on ${listens}, but its http port is ${declared}`);
    }
    if (workload.owner.kind === 'Job' && defaultPort !== undefined) problems.push(`${where}: a Job runs the server ${service}`);
  }
  return problems;
}

/** Values two services must agree on (one Redis for cache, pub/sub and events; the secrets each pair shares). */
const SHARED: Record<string, readonly ImageServiceName[]> = {
  REDIS_URL: ['gateway', 'users', 'orders'],
  REDIS_KEY_PREFIX: ['gateway', 'users', 'orders'],
  ORDERS_TO_USERS_SECRET: ['users', 'orders'],
  USERS_DATABASE_URL: ['users', 'migrate'],
  ORDERS_DATABASE_URL: ['orders', 'migrate'],
};

/** The services find and trust each other: URLs reach the right Service, and shared secrets match. Never prints values. */
export function wiringProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  // Broken references are environmentProblems' to report.
  const running = runningContainers(objects, []);
  const named = (service: ImageServiceName) => running.filter((r) => r.service === service);

  for (const [key, services] of Object.entries(SHARED)) {
    const values = new Set(services.flatMap((service) => named(service).map((r) => r.env[key])));
    if (values.size > 1) problems.push(`${key} differs between ${services.join(', ')}`);
  }
  const subgraphs = running.filter((r) => r.workload.owner.kind === 'Deployment' && r.service && r.service !== 'gateway');
  for (const gateway of named('gateway')) {
    const urls = pairs(gateway.env.SUBGRAPH_URLS);
    const secrets = pairs(gateway.env.SUBGRAPH_SECRETS);
    for (const subgraph of new Set(subgraphs.map((r) => r.service as ImageServiceName))) {
      const url = urls.get(subgraph);
      if (!url) problems.push(`${gateway.where}: SUBGRAPH_URLS has no ${subgraph}`);
      else expectServiceAt(objects, gateway, url, subgraph, `SUBGRAPH_URLS ${subgraph}`, problems);
      const own = named(subgraph).map((r) => r.env[`${subgraph.toUpperCase()}_SUBGRAPH_SECRET`]);
      if (own.some((value) => value !== secrets.get(subgraph))) {
        problems.push(`${gateway.where}: SUBGRAPH_SECRETS ${subgraph} is not the ${subgraph.toUpperCase()}_SUBGRAPH_SECRET ${subgraph} holds`);
      }
    }
  }
  for (const orders of named('orders')) {
    expectServiceAt(objects, orders, orders.env.USERS_URL ?? '', 'users', 'USERS_URL', problems);
  }
  return problems;
}

const pairs = (text = '') => new Map(text.split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2) as [string, string]));

/** `http://users:4001/graphql` reaches a Service in the same namespace whose pods run `service`. */
function expectServiceAt(
  objects: readonly Manifest[],
  from: RunningContainer,
  url: string,
  service: ImageServiceName,
  what: string,
  problems: string[],
) {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  const [host = '', namespace] = (parsed?.hostname ?? '').split('.');
  const target = find<IService>(objects, 'Service', host, from.workload.owner);
  if (!parsed || !target || (namespace !== undefined && namespace !== from.workload.owner.metadata.namespace)) {
    problems.push(`${from.where}: ${what} names no Service in this namespace`);
    return;
  }
  if (!target.spec?.ports?.some((p) => p.port === Number(parsed.port || 80))) {
    problems.push(`${from.where}: ${what} uses a port ${manifestId(target)} does not expose`);
  }
  const pods = selected(objects, { matchLabels: target.spec?.selector ?? {} }, target, manifestId(target), []);
  const runs = runningContainers(objects, []).filter((r) => pods.some((w) => w.owner === r.workload.owner)).map((r) => r.service);
  if (!runs.includes(service)) problems.push(`${from.where}: ${what} reaches ${manifestId(target)}, whose pods do not run ${service}`);
}

/** Seconds the process may still need after SIGTERM beyond the drain itself: closing Postgres, Redis, telemetry. */
export const SHUTDOWN_MARGIN_S = 5;

/**
 * Probes hit the right endpoints, and Kubernetes waits for the whole drain before SIGKILL: the grace period
 * counts from the start of preStop, so it must cover preStop + DRAIN_DELAY_MS + DRAIN_GRACE_MS + a margin.
 */
export function lifecycleProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const r of runningContainers(objects, [])) {
    if (r.workload.owner.kind !== 'Deployment' || !r.service) continue;
    const c = r.container;
    if (c.readinessProbe?.httpGet?.path !== '/readyz') problems.push(`${r.where}: readinessProbe is not GET /readyz`);
    // Liveness on /readyz would restart every pod whenever the database or a subgraph is down.
    if (c.livenessProbe?.httpGet?.path !== '/healthz') problems.push(`${r.where}: livenessProbe is not GET /healthz`);
    if (c.startupProbe?.httpGet?.path !== '/healthz' && !c.livenessProbe?.initialDelaySeconds) {
      problems.push(`${r.where}: neither a startupProbe on /healthz nor a liveness initialDelaySeconds covers start-up`);
    }
    const preStop = c.lifecycle?.preStop;
    const exec = preStop?.exec?.command;
    const sleep = preStop?.sleep?.seconds ?? (exec?.[0] === 'sleep' && exec.length === 2 ? Number(exec[1]) : undefined);
    if (sleep === undefined || !(sleep > 0)) problems.push(`${r.where}: no preStop sleep to wait out endpoint removal before SIGTERM`);
    // Parsed exactly as the services parse them, defaults included.
    const [delay, drainGrace] = (['DRAIN_DELAY_MS', 'DRAIN_GRACE_MS'] as const).map((key) => observabilitySettings[key].safeParse(r.env[key]).data);
    if (delay === undefined || drainGrace === undefined) {
      problems.push(`${r.where}: DRAIN_DELAY_MS or DRAIN_GRACE_MS does not parse`);
      continue;
    }
    const drain = (delay + drainGrace) / 1000;
    const needed = (sleep ?? 0) + drain + SHUTDOWN_MARGIN_S;
    const grace = r.workload.pod.terminationGracePeriodSeconds ?? 30;
    if (grace < needed) {
      problems.push(`${r.where}: terminationGracePeriodSeconds ${grace} < preStop ${sleep ?? 0}s + drain ${drain}s + ${SHUTDOWN_MARGIN_S}s`);
    }
  }
  return problems;
}
