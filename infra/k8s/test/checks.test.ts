import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { CHECKS, type Manifest } from '../src/index.ts';
import { renderWithExampleSecrets } from './support.ts';

// Each check must be able to fail: break one thing in a copy of production and expect the check to say so.
const production = renderWithExampleSecrets('overlays/production');

function get<T>(objects: Manifest[], kind: string, name: string): Manifest & T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name}`);
  return found as Manifest & T;
}
const deployment = (objects: Manifest[], name: string) => get<IDeployment>(objects, 'Deployment', name);
const container = (objects: Manifest[], name: string): IContainer => {
  const found = deployment(objects, name).spec?.template.spec?.containers[0];
  if (!found) throw new Error(`no container in ${name}`);
  return found;
};
const config = (objects: Manifest[], name: string) => get<IConfigMap>(objects, 'ConfigMap', name).data ?? {};
const secretData = (objects: Manifest[]) => get<ISecret>(objects, 'Secret', 'federated-graph-secrets').data ?? {};
const setSecret = (objects: Manifest[], key: string, value: string) => {
  secretData(objects)[key] = Buffer.from(value).toString('base64');
};
const hpa = (objects: Manifest[], name: string) => get<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', name);
const ingress = (objects: Manifest[]) => get<IIngress>(objects, 'Ingress', 'gateway');
const firstPath = (objects: Manifest[]) => ingress(objects).spec?.rules?.[0]?.http?.paths[0];
const withoutEnv = (c: IContainer, name: string) => {
  c.env = c.env?.filter((e) => e.name !== name);
};
const podSpec = (objects: Manifest[], name: string) => deployment(objects, name).spec?.template.spec;
const podLabels = (objects: Manifest[], name: string) => deployment(objects, name).spec?.template.metadata?.labels;
const migrate = (objects: Manifest[]) => get<IJob>(objects, 'Job', 'migrate').spec?.template.spec?.containers[0];
/** Overwrites fields, type-checked loosely on purpose: some breakages set values the types forbid. */
const set = (target: object | undefined, values: object) => Object.assign(target ?? {}, values);
const USERS_MISLABELLED = (o: Manifest[]) => set(podLabels(o, 'users'), { 'app.kubernetes.io/name': 'user' });
const USERS_PORT_RENAMED = (o: Manifest[]) => set(container(o, 'users').ports?.[0], { name: 'web' });

type Breakage = [description: string, change: (objects: Manifest[]) => void, expected: RegExp];

const BREAKAGES: Record<string, Breakage[]> = {
  schema: [
    ['a field of the wrong type', (o) => set(deployment(o, 'users').spec, { replicas: 'two' }), /spec\/replicas must be integer/],
    [
      'a misspelt field',
      (o) => set(container(o, 'users'), { readinesProbe: {} }),
      /unknown field spec\.template\.spec\.containers\[0\]\.readinesProbe/,
    ],
    ['a kind the manifests may not use', (o) => o.push({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'debug' } }), /v1\/Pod is not a kind/],
    [
      'a removed API version',
      (o) => set(hpa(o, 'users'), { apiVersion: 'autoscaling/v2beta2' }),
      /autoscaling\/v2beta2\/HorizontalPodAutoscaler is not a kind/,
    ],
    ['a name that is no DNS label', (o) => set(get(o, 'Service', 'users').metadata, { name: 'Users_Service' }), /not a DNS label/],
  ],
  labels: [
    [
      'a missing label',
      (o) => delete get(o, 'Service', 'users').metadata.labels?.['app.kubernetes.io/part-of'],
      /Service\/.*\/users: no app\.kubernetes\.io\/part-of label/,
    ],
  ],
  selectors: [
    ['a pod label the Deployment selector misses', USERS_MISLABELLED, /users: selector does not match its own pod template/],
    ['a pod label the Service misses', USERS_MISLABELLED, /Service\/.*\/users: selector matches 0 workloads/],
    ['a pod label the budget misses', USERS_MISLABELLED, /PodDisruptionBudget\/.*\/users: selector matches 0 Deployments/],
    [
      'a Service selecting every workload',
      (o) => set(get<IService>(o, 'Service', 'users').spec, { selector: { 'app.kubernetes.io/part-of': 'federated-graph' } }),
      /users: selector matches 4 workloads/,
    ],
    [
      'a spread constraint on other pods',
      (o) => set(podSpec(o, 'orders')?.topologySpreadConstraints?.[0]?.labelSelector?.matchLabels, { 'app.kubernetes.io/name': 'users' }),
      /orders topologySpreadConstraints\[0\]: does not match/,
    ],
    [
      'a NetworkPolicy peer matching nothing',
      (o) => {
        const peer = get<INetworkPolicy>(o, 'NetworkPolicy', 'users').spec?.ingress?.[0]?.from?.[1];
        set(peer?.podSelector?.matchLabels, { 'app.kubernetes.io/name': 'order' });
      },
      /ingress\[0\]\.from\[1\] matches no pods/,
    ],
  ],
  ports: [
    ['a renamed container port (probes)', USERS_PORT_RENAMED, /users: container users readinessProbe port http is not a container port/],
    ['a renamed container port (Service)', USERS_PORT_RENAMED, /Service\/.*\/users: targetPort http is not a port/],
    ['a renamed container port (NetworkPolicy)', USERS_PORT_RENAMED, /NetworkPolicy\/.*\/users: port http is not a port/],
    [
      'a metrics annotation on the wrong port',
      (o) => set(deployment(o, 'gateway').spec?.template.metadata?.annotations, { 'prometheus.io/port': '9090' }),
      /prometheus\.io\/port 9090/,
    ],
  ],
  scaling: [
    ['an autoscaler whose minimum exceeds its maximum', (o) => set(hpa(o, 'users').spec, { minReplicas: 7 }), /minReplicas 7 > maxReplicas 6/],
    ['replicas on an autoscaled Deployment', (o) => set(deployment(o, 'users').spec, { replicas: 3 }), /sets replicas/],
    [
      'a budget that blocks every drain',
      (o) => set(get<IPodDisruptionBudget>(o, 'PodDisruptionBudget', 'users').spec, { maxUnavailable: undefined, minAvailable: 2 }),
      /minAvailable 2 leaves .*users's 2 replicas nothing to evict/,
    ],
    [
      'an autoscaler for a missing Deployment',
      (o) => set(hpa(o, 'users').spec?.scaleTargetRef, { name: 'user' }),
      /scaleTargetRef apps\/v1\/Deployment\/user is not a rendered Deployment/,
    ],
    ['a Deployment without an autoscaler', (o) => o.splice(o.indexOf(hpa(o, 'orders')), 1), /orders: no HorizontalPodAutoscaler/],
    ['a container without a CPU request', (o) => delete container(o, 'gateway').resources?.requests?.cpu, /container gateway has no CPU request/],
  ],
  ingress: [
    ['a backend port that does not exist', (o) => set(firstPath(o)?.backend.service?.port, { name: 'web' }), /backend port web is not a port/],
    [
      'a backend Service that does not exist',
      (o) => set(firstPath(o)?.backend.service, { name: 'gateways' }),
      /backend gateways is not a rendered Service/,
    ],
    ['a path exposing /metrics', (o) => set(firstPath(o), { path: '/', pathType: 'Prefix' }), /exposes Prefix \//],
    [
      'nginx timeouts that cut websockets',
      (o) => delete ingress(o).metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-read-timeout'],
      /proxy-read-timeout 60s is too short/,
    ],
    [
      'a TLS host without a rule',
      (o) => set(ingress(o).spec?.tls?.[0], { hosts: ['other.example.com'] }),
      /TLS host other\.example\.com has no rule/,
    ],
  ],
  security: [
    [
      'a writable root filesystem',
      (o) => set(container(o, 'orders').securityContext, { readOnlyRootFilesystem: false }),
      /container orders has a writable root filesystem/,
    ],
    ['root', (o) => set(podSpec(o, 'orders')?.securityContext, { runAsUser: 0 }), /orders: must run as the image's non-root user/],
    ['no memory limit', (o) => delete migrate(o)?.resources?.limits?.memory, /container migrate has no memory request and limit/],
    [
      'a request above its limit',
      (o) => set(container(o, 'orders').resources?.requests, { memory: '1Gi' }),
      /container orders requests more memory than its limit/,
    ],
  ],
  environment: [
    [
      'a secret the gateway requires, unset',
      (o) => withoutEnv(container(o, 'gateway'), 'JWT_SECRET'),
      /gateway: JWT_SECRET: is required in production/,
    ],
    [
      'a variable the gateway never reads',
      (o) => set(config(o, 'gateway-config'), { REDIS_ULR: 'redis://redis:6379' }),
      /gateway: REDIS_ULR is set but gateway never reads it/,
    ],
    ['an invalid value', (o) => set(config(o, 'federated-graph-shared'), { LOG_LEVEL: 'verbose' }), /users: LOG_LEVEL: /],
    [
      'a database URL a cluster needs but the schema does not',
      (o) => withoutEnv(container(o, 'users'), 'USERS_DATABASE_URL'),
      /container users: USERS_DATABASE_URL is not set/,
    ],
    [
      'a ConfigMap key that does not exist',
      (o) => set(migrate(o)?.env?.[1]?.valueFrom?.configMapKeyRef, { key: 'LOGLEVEL' }),
      /ConfigMap federated-graph-shared has no key LOGLEVEL/,
    ],
    [
      'a Secret that is not rendered',
      (o) => set(container(o, 'orders').env?.[0]?.valueFrom?.secretKeyRef, { name: 'federated-graph-secret' }),
      /Secret federated-graph-secret is not rendered/,
    ],
    ['service links (USERS_PORT=tcp://…)', (o) => set(podSpec(o, 'users'), { enableServiceLinks: true }), /users: USERS_PORT: /],
    [
      'a command that starts no service',
      (o) => set(container(o, 'users'), { args: ['npm', 'start'] }),
      /\["npm","start"\] starts none of the services/,
    ],
    [
      'the image default (the embedded stack)',
      (o) => delete container(o, 'users').args,
      /\["node",("--[^"]*",)*"infra\/stack\/dist\/index\.js"\] starts none of the services/,
    ],
    [
      'a command that replaces tini',
      (o) => set(container(o, 'users'), { command: container(o, 'users').args, args: undefined }),
      /command replaces the image's ENTRYPOINT \["\/usr\/bin\/tini","--"\]/,
    ],
    [
      'a container port the service does not listen on',
      (o) => set(container(o, 'users').ports?.[0], { containerPort: 4101 }),
      /users listens on 4001, but its http port is 4101/,
    ],
    ['development mode', (o) => set(config(o, 'federated-graph-shared'), { NODE_ENV: 'development' }), /NODE_ENV is development, not production/],
    ['a gateway without its Node flags', (o) => set(container(o, 'gateway'), { args: ['node', 'gateway/dist/index.js'] }), /starts gateway without --max-semi-space-size=64 --heap-growing-percent=50/],
  ],
  wiring: [
    [
      'a subgraph secret the gateway does not share',
      (o) => setSecret(o, 'USERS_SUBGRAPH_SECRET', 'x'.repeat(40)),
      /SUBGRAPH_SECRETS users is not the USERS_SUBGRAPH_SECRET users holds/,
    ],
    [
      'USERS_URL reaching orders',
      (o) => set(config(o, 'orders-config'), { USERS_URL: 'http://orders:4002/graphql' }),
      /USERS_URL reaches Service\/.*\/orders, whose pods do not run users/,
    ],
    [
      'a subgraph URL on a port the Service lacks',
      (o) => set(config(o, 'gateway-config'), { SUBGRAPH_URLS: 'users=http://users:4000/graphql,orders=http://orders:4002/graphql' }),
      /SUBGRAPH_URLS users uses a port/,
    ],
    [
      'a subgraph the gateway has no URL for',
      (o) => set(config(o, 'gateway-config'), { SUBGRAPH_URLS: 'users=http://users:4001/graphql' }),
      /SUBGRAPH_URLS has no orders/,
    ],
    [
      'two Redis servers',
      (o) => {
        setSecret(o, 'ORDERS_REDIS_URL', 'redis://other-redis:6379');
        set(container(o, 'orders').env?.find((e) => e.name === 'REDIS_URL')?.valueFrom?.secretKeyRef, { key: 'ORDERS_REDIS_URL' });
      },
      /REDIS_URL differs between gateway, users, orders/,
    ],
  ],
  lifecycle: [
    [
      'a drain longer than the grace period',
      (o) => set(config(o, 'federated-graph-shared'), { DRAIN_GRACE_MS: '60000' }),
      /terminationGracePeriodSeconds 30 < preStop 5s \+ drain 60s \+ 5s/,
    ],
    ['no preStop', (o) => delete container(o, 'gateway').lifecycle, /gateway: no preStop sleep/],
    [
      'liveness on /readyz',
      (o) => set(container(o, 'orders').livenessProbe?.httpGet, { path: '/readyz' }),
      /orders: livenessProbe is not GET \/healthz/,
    ],
    ['no start-up allowance', (o) => delete container(o, 'orders').startupProbe, /orders: neither a startupProbe/],
  ],
};

describe('each check finds what it is for', () => {
  it.each(Object.keys(CHECKS))('the %s check passes on production as rendered', (name) => {
    expect(CHECKS[name]?.(production, [])).toEqual([]);
  });

  const cases = Object.entries(BREAKAGES).flatMap(([check, breakages]) =>
    breakages.map(([what, change, expected]) => [check, what, change, expected] as const),
  );
  it.each(cases)('the %s check reports %s', (check, _, change, expected) => {
    const objects = structuredClone(production);
    change(objects);
    const problems = CHECKS[check]?.(objects, []) ?? [];
    expect(problems.some((problem) => expected.test(problem)), problems.join('\n')).toBe(true);
  });

  it('breaks every check at least once', () => {
    expect(Object.keys(BREAKAGES).sort()).toEqual(Object.keys(CHECKS).sort());
  });
});
