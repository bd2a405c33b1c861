import { readFileSync } from 'node:fs';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IJob } from 'kubernetes-models/batch/v1/Job';
import { describe, expect, it } from 'vitest';
import { environmentProblems, imageStart, runningContainers } from '../src/environment.ts';
import { CHECKS, manifestId } from '../src/index.ts';
import { ofKind } from '../src/objects.ts';
import { BASE_PROVIDES, K8S_DIR, OVERLAYS, renderWithExampleSecrets } from './support.ts';

const KINDS = ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'Job', 'NetworkPolicy', 'PodDisruptionBudget', 'Service'];

describe.each(['base', ...OVERLAYS.map((name) => `overlays/${name}`)])('%s', (dir) => {
  const objects = renderWithExampleSecrets(dir);
  const provided = dir === 'base' ? BASE_PROVIDES : [];

  it.each(Object.keys(CHECKS))('passes the %s check', (name) => {
    expect(CHECKS[name]?.(objects, provided)).toEqual([]);
  });

  it('runs the three services, their autoscalers and budgets, and the migration Job', () => {
    expect(new Set(objects.map((o) => o.kind))).toEqual(new Set([...KINDS, ...(dir === 'base' ? [] : ['Namespace', 'Secret'])]));
    const commands = (kind: string) => runningContainers(objects, []).filter((r) => r.workload.owner.kind === kind).map((r) => r.service);
    expect(commands('Deployment').sort()).toEqual(['gateway', 'orders', 'users']);
    expect(commands('Job')).toEqual(['migrate']);
  });
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  const objects = renderWithExampleSecrets(`overlays/${overlay}`);
  const [namespace] = ofKind(objects, 'Namespace');

  it('puts every object in its own namespace', () => {
    expect(namespace).toBeDefined();
    for (const o of objects) if (o !== namespace) expect(o.metadata.namespace, manifestId(o)).toBe(namespace?.metadata.name);
  });

  it('pins the image', () => {
    for (const d of [...ofKind<IDeployment>(objects, 'Deployment'), ...ofKind<IJob>(objects, 'Job')]) {
      for (const c of d.spec?.template.spec?.containers ?? []) expect(c.image, manifestId(d)).toMatch(/\/.+(:(?!latest$)[\w.-]+|@sha256:[0-9a-f]{64})$/);
    }
  });

  it('keeps its real secrets out of git', () => {
    expect(readFileSync(`${K8S_DIR}/.gitignore`, 'utf8')).toMatch(/^overlays\/\*\/secrets\.env$/m);
  });

  it('ships an example secrets file the services refuse in production as it is', () => {
    // An unedited copy of the example must stop the services at start-up, never run with public values.
    const problems = environmentProblems(renderWithExampleSecrets(`overlays/${overlay}`, { strong: false }));
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) expect(problem).toMatch(/is a development secret; set a real one in production/);
    for (const service of ['gateway', 'users', 'orders']) expect(problems.some((p) => p.includes(`/${service}: `))).toBe(true);
  });
});

describe('the image', () => {
  it('starts commands under tini, which the containers keep by passing theirs as args', () => {
    expect(imageStart().entrypoint[0]).toMatch(/\/tini$/);
  });
});

describe('production', () => {
  it('keeps two replicas of everything, so a drain or an eviction never takes a service down', () => {
    const hpas = ofKind<IHorizontalPodAutoscaler>(renderWithExampleSecrets('overlays/production'), 'HorizontalPodAutoscaler');
    expect(hpas).toHaveLength(3);
    for (const h of hpas) expect(h.spec?.minReplicas, manifestId(h)).toBeGreaterThanOrEqual(2);
  });
});
