import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { manifestId, type Manifest } from './kustomize.ts';

/** Typed access to rendered objects; the checks run on objects that already passed schemaProblems. */
export const ofKind = <T>(objects: readonly Manifest[], kind: string) => objects.filter((o) => o.kind === kind) as Array<Manifest & T>;

export function find<T>(objects: readonly Manifest[], kind: string, name: string, near: Manifest): (Manifest & T) | undefined {
  return ofKind<T>(objects, kind).find((o) => o.metadata.name === name && o.metadata.namespace === near.metadata.namespace);
}

export type LabelSelector = NonNullable<IDeployment['spec']>['selector'];

/** A pod template and what owns it (a Deployment or a Job). */
export interface Workload {
  owner: Manifest;
  id: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  pod: IPodSpec;
}

export function workloads(objects: readonly Manifest[]): Workload[] {
  return [...ofKind<IDeployment>(objects, 'Deployment'), ...ofKind<IJob>(objects, 'Job')].map((owner) => ({
    owner,
    id: manifestId(owner),
    labels: owner.spec?.template.metadata?.labels ?? {},
    annotations: owner.spec?.template.metadata?.annotations ?? {},
    pod: owner.spec?.template.spec ?? { containers: [] },
  }));
}

/** The workloads a selector picks in `near`'s namespace. Only matchLabels is evaluated; anything else is a problem. */
export function selected(
  objects: readonly Manifest[],
  selector: LabelSelector | undefined,
  near: Manifest,
  where: string,
  problems: string[],
): Workload[] {
  if (selector?.matchExpressions?.length) problems.push(`${where}: uses matchExpressions, which these checks do not evaluate`);
  const wanted = Object.entries(selector?.matchLabels ?? {});
  if (wanted.length === 0) problems.push(`${where}: selects by no label (every pod)`);
  return workloads(objects).filter(
    (w) => w.owner.metadata.namespace === near.metadata.namespace && wanted.every(([key, value]) => w.labels[key] === value),
  );
}

export const containersOf = (w: Workload): IContainer[] => [...(w.pod.initContainers ?? []), ...w.pod.containers];

/** Whether a port (a name or a number, as in probes, targetPort and NetworkPolicy) is one the pod declares. */
export function declaresPort(containers: readonly IContainer[], port: string | number): boolean {
  return containers.some((c) => (c.ports ?? []).some((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port)));
}

/** A Kubernetes quantity in base units: `250m` → 0.25, `512Mi` → 536870912. */
export function quantity(value: string | number): number {
  const match = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(value));
  if (!match) throw new Error(`not a quantity this check understands: ${value}`);
  const units: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (match[2] ? (units[match[2]] ?? 1) : 1);
}
