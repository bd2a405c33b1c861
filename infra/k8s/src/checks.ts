import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IService } from 'kubernetes-models/v1/Service';
import { manifestId, type Manifest } from './kustomize.ts';
import { containersOf, declaresPort, find, ofKind, quantity, selected, workloads } from './objects.ts';

/**
 * Cross-reference checks on rendered objects. Each returns every problem it finds as a sentence, so a test
 * can both require none and prove, on a broken copy, that it finds one.
 */

const NAME = 'app.kubernetes.io/name';
const PART_OF = 'app.kubernetes.io/part-of';

/** Every object and pod template carries the app.kubernetes.io labels dashboards and selectors rely on. */
export function labelProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    for (const key of [NAME, PART_OF]) if (!o.metadata.labels?.[key]) problems.push(`${manifestId(o)}: no ${key} label`);
  }
  for (const w of workloads(objects)) {
    for (const key of [NAME, PART_OF]) if (!w.labels[key]) problems.push(`${w.id}: pod template has no ${key} label`);
  }
  return problems;
}

/** Deployment, Service, PDB, NetworkPolicy and spread selectors pick the pods they are meant to. */
export function selectorProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const d of ofKind<IDeployment>(objects, 'Deployment')) {
    const id = manifestId(d);
    const picked = selected(objects, d.spec?.selector, d, `${id} selector`, problems);
    if (!picked.some((w) => w.owner === d)) problems.push(`${id}: selector does not match its own pod template's labels`);
    for (const other of picked) if (other.owner !== d) problems.push(`${id}: selector also matches the pods of ${other.id}`);
    for (const [i, spread] of (d.spec?.template.spec?.topologySpreadConstraints ?? []).entries()) {
      const where = `${id} topologySpreadConstraints[${i}]`;
      if (!selected(objects, spread.labelSelector, d, where, problems).some((w) => w.owner === d)) {
        problems.push(`${where}: does not match the Deployment's own pods, so it spreads nothing`);
      }
    }
  }
  for (const s of ofKind<IService>(objects, 'Service')) {
    const id = manifestId(s);
    const picked = selected(objects, { matchLabels: s.spec?.selector ?? {} }, s, `${id} selector`, problems);
    if (picked.length !== 1) problems.push(`${id}: selector matches ${picked.length} workloads (${picked.map((w) => w.id).join(', ')}), not one`);
  }
  for (const p of ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget')) {
    const id = manifestId(p);
    const picked = selected(objects, p.spec?.selector, p, `${id} selector`, problems).filter((w) => w.owner.kind === 'Deployment');
    if (picked.length !== 1) problems.push(`${id}: selector matches ${picked.length} Deployments, not one`);
  }
  for (const n of ofKind<INetworkPolicy>(objects, 'NetworkPolicy')) {
    const id = manifestId(n);
    if (selected(objects, n.spec?.podSelector, n, `${id} podSelector`, problems).length === 0) problems.push(`${id}: podSelector matches no pods`);
    for (const [i, rule] of (n.spec?.ingress ?? []).entries()) {
      for (const [j, peer] of (rule.from ?? []).entries()) {
        if (!peer.podSelector || peer.namespaceSelector) continue;
        if (selected(objects, peer.podSelector, n, `${id} ingress[${i}].from[${j}]`, problems).length === 0) {
          problems.push(`${id}: ingress[${i}].from[${j}] matches no pods`);
        }
      }
    }
  }
  return problems;
}

/** Probe ports, Service targetPorts, NetworkPolicy ports and the metrics annotation name a declared containerPort. */
export function portProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const w of workloads(objects)) {
    for (const c of containersOf(w)) {
      for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
        const port = c[kind]?.httpGet?.port ?? c[kind]?.tcpSocket?.port;
        if (port !== undefined && !declaresPort([c], port)) {
          problems.push(`${w.id}: container ${c.name} ${kind} port ${port} is not a container port`);
        }
      }
    }
    const metricsPort = w.annotations['prometheus.io/port'];
    if (metricsPort !== undefined && !declaresPort(containersOf(w), Number(metricsPort))) {
      problems.push(`${w.id}: prometheus.io/port ${metricsPort} is not a container port`);
    }
  }
  for (const s of ofKind<IService>(objects, 'Service')) {
    const id = manifestId(s);
    const pods = selected(objects, { matchLabels: s.spec?.selector ?? {} }, s, id, []);
    for (const port of s.spec?.ports ?? []) {
      const target = port.targetPort ?? port.port;
      for (const w of pods) if (!declaresPort(w.pod.containers, target)) problems.push(`${id}: targetPort ${target} is not a port of ${w.id}`);
    }
  }
  for (const n of ofKind<INetworkPolicy>(objects, 'NetworkPolicy')) {
    const id = manifestId(n);
    const pods = selected(objects, n.spec?.podSelector, n, id, []);
    for (const rule of n.spec?.ingress ?? []) {
      for (const { port } of rule.ports ?? []) {
        for (const w of pods) {
          if (port !== undefined && !declaresPort(w.pod.containers, port)) problems.push(`${id}: port ${port} is not a port of ${w.id}`);
        }
      }
    }
  }
  return problems;
}

/** Each Deployment is autoscaled and disruption-budgeted coherently. */
export function scalingProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const hpas = ofKind<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler');
  const pdbs = ofKind<IPodDisruptionBudget>(objects, 'PodDisruptionBudget');
  for (const h of hpas) {
    const id = manifestId(h);
    if (!h.spec) continue;
    const { scaleTargetRef: ref, minReplicas = 1, maxReplicas, metrics = [] } = h.spec;
    const target = ref.kind === 'Deployment' && ref.apiVersion === 'apps/v1' ? find<IDeployment>(objects, 'Deployment', ref.name, h) : undefined;
    if (!target) {
      problems.push(`${id}: scaleTargetRef ${ref.apiVersion}/${ref.kind}/${ref.name} is not a rendered Deployment`);
      continue;
    }
    if (minReplicas > maxReplicas) problems.push(`${id}: minReplicas ${minReplicas} > maxReplicas ${maxReplicas}`);
    if (target.spec?.replicas !== undefined) {
      problems.push(`${id}: ${manifestId(target)} sets replicas, which every apply resets under the autoscaler`);
    }
    if (!metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu' && m.resource.target.type === 'Utilization')) {
      problems.push(`${id}: does not scale on CPU utilisation`);
    }
    // Utilisation is a share of the request: without one the autoscaler cannot compute it.
    for (const c of target.spec?.template.spec?.containers ?? []) {
      if (c.resources?.requests?.cpu === undefined) problems.push(`${id}: container ${c.name} has no CPU request to scale against`);
    }
    for (const p of pdbs.filter((pdb) => budgets(pdb, target))) {
      const { minAvailable, maxUnavailable } = p.spec ?? {};
      if (typeof minAvailable === 'string' || typeof maxUnavailable === 'string') {
        problems.push(`${manifestId(p)}: percentages are not evaluated here`);
      }
      // A budget that needs every replica the autoscaler may leave running lets no node drain.
      if (typeof minAvailable === 'number' && minReplicas < minAvailable + 1) {
        problems.push(`${manifestId(p)}: minAvailable ${minAvailable} leaves ${id}'s ${minReplicas} replicas nothing to evict`);
      }
      if (maxUnavailable === 0) problems.push(`${manifestId(p)}: maxUnavailable 0 blocks every drain`);
    }
  }
  for (const d of ofKind<IDeployment>(objects, 'Deployment')) {
    const id = manifestId(d);
    if (!hpas.some((h) => h.spec?.scaleTargetRef.name === d.metadata.name && h.metadata.namespace === d.metadata.namespace)) {
      problems.push(`${id}: no HorizontalPodAutoscaler`);
    }
    if (!pdbs.some((p) => budgets(p, d))) problems.push(`${id}: no PodDisruptionBudget`);
  }
  return problems;

  function budgets(pdb: Manifest & IPodDisruptionBudget, deployment: Manifest): boolean {
    return selected(objects, pdb.spec?.selector, pdb, manifestId(pdb), []).some((w) => w.owner === deployment);
  }
}

/** The Ingress routes only /graphql, to a Service port that exists, with timeouts a websocket survives. */
export function ingressProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const i of ofKind<IIngress>(objects, 'Ingress')) {
    const id = manifestId(i);
    if (!i.spec?.ingressClassName) problems.push(`${id}: no ingressClassName`);
    if (i.spec?.defaultBackend) problems.push(`${id}: a defaultBackend would expose /healthz, /readyz and /metrics`);
    for (const key of ['proxy-read-timeout', 'proxy-send-timeout']) {
      // nginx closes a proxied websocket after this many idle seconds (60 by default).
      const seconds = Number(i.metadata.annotations?.[`nginx.ingress.kubernetes.io/${key}`] ?? 60);
      if (!(seconds >= 300)) problems.push(`${id}: ${key} ${seconds}s is too short for long-lived websockets`);
    }
    const hosts = new Set<string>();
    for (const rule of i.spec?.rules ?? []) {
      if (!rule.host) problems.push(`${id}: a rule without a host`);
      else hosts.add(rule.host);
      for (const path of rule.http?.paths ?? []) {
        if (path.path !== '/graphql' || path.pathType !== 'Exact') {
          problems.push(`${id}: exposes ${path.pathType} ${path.path}, not just Exact /graphql`);
        }
        const backend = path.backend.service;
        const service = backend && find<IService>(objects, 'Service', backend.name, i);
        if (!backend || !service) {
          problems.push(`${id}: backend ${backend?.name ?? '(none)'} is not a rendered Service`);
          continue;
        }
        const port = backend.port;
        if (!service.spec?.ports?.some((p) => (port?.name !== undefined ? p.name === port.name : p.port === port?.number))) {
          problems.push(`${id}: backend port ${port?.name ?? port?.number} is not a port of ${manifestId(service)}`);
        }
      }
    }
    for (const tls of i.spec?.tls ?? []) {
      for (const host of tls.hosts ?? []) if (!hosts.has(host)) problems.push(`${id}: TLS host ${host} has no rule`);
    }
  }
  return problems;
}

/** Pods meet the "restricted" Pod Security Standard the namespaces enforce, with requests and limits set. */
export function securityProblems(objects: readonly Manifest[]): string[] {
  const problems: string[] = [];
  for (const w of workloads(objects)) {
    const pod = w.pod.securityContext;
    if (pod?.runAsNonRoot !== true || pod.runAsUser !== 1000) problems.push(`${w.id}: must run as the image's non-root user (uid 1000)`);
    if (pod?.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${w.id}: no RuntimeDefault seccomp profile`);
    if (w.pod.automountServiceAccountToken !== false) problems.push(`${w.id}: mounts a service account token it never uses`);
    for (const c of containersOf(w)) {
      const where = `${w.id}: container ${c.name}`;
      const sc = c.securityContext;
      if (sc?.allowPrivilegeEscalation !== false) problems.push(`${where} allows privilege escalation`);
      if (sc?.privileged) problems.push(`${where} is privileged`);
      if (!sc?.capabilities?.drop?.includes('ALL')) problems.push(`${where} keeps Linux capabilities`);
      if (sc?.readOnlyRootFilesystem !== true) problems.push(`${where} has a writable root filesystem`);
      if (sc?.readOnlyRootFilesystem && !c.volumeMounts?.some((m) => m.mountPath === '/tmp')) problems.push(`${where} has no writable /tmp`);
      for (const resource of ['cpu', 'memory']) {
        const request = c.resources?.requests?.[resource];
        const limit = c.resources?.limits?.[resource];
        if (request === undefined || limit === undefined) problems.push(`${where} has no ${resource} request and limit`);
        else if (quantity(request) > quantity(limit)) problems.push(`${where} requests more ${resource} than its limit`);
      }
    }
  }
  return problems;
}
