import { ingressProblems, labelProblems, portProblems, scalingProblems, securityProblems, selectorProblems } from './checks.ts';
import { environmentProblems, lifecycleProblems, wiringProblems } from './environment.ts';
import type { Manifest } from './kustomize.ts';
import { schemaProblems } from './schema.ts';

export { render, manifestId, type Manifest } from './kustomize.ts';

/**
 * Every check, by name. `provided` lists objects rendered elsewhere (`Secret/federated-graph-secrets` for the
 * base, which only the overlays generate).
 */
export const CHECKS: Record<string, (objects: readonly Manifest[], provided: readonly string[]) => string[]> = {
  schema: (objects) => objects.flatMap(schemaProblems),
  labels: labelProblems,
  selectors: selectorProblems,
  ports: portProblems,
  scaling: scalingProblems,
  ingress: ingressProblems,
  security: securityProblems,
  environment: environmentProblems,
  wiring: wiringProblems,
  lifecycle: lifecycleProblems,
};
