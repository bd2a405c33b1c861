import type { Supergraph } from '@apollo/federation-internals';
import type { Viewer } from '@fed/platform';

/**
 * Progressive override (`@override(from:, label:)`, Federation 2.7): a field moves to its new subgraph only
 * for requests whose label is on. `percent(N)` labels are on for N % of viewers, by a stable hash of the viewer,
 * so one user never flips between subgraphs from one request to the next (anonymous requests draw per request).
 * Any other label is on only when a trusted caller names it in the `override-labels` header.
 */
export interface OverrideLabels {
  /** Every label the supergraph uses. */
  readonly labels: readonly string[];
  /** Which labels are on for this request, and a key that tells apart requests whose plans differ. */
  resolve(viewer: Viewer | null, requested: string | undefined): { key: string; conditions: Map<string, boolean> };
}

/** The header trusted callers name custom labels in (comma-separated). */
export const OVERRIDE_LABELS_HEADER = 'override-labels';
/** The token scope that makes a caller trusted to set labels (a canary client, an operator's tool). */
export const OVERRIDE_LABELS_SCOPE = 'gateway:override-labels';

const PERCENT = /^percent\((\d{1,3}(?:\.\d{1,8})?)\)$/;

/** FNV-1a, 32 bits: stable across processes and replicas, and cheap enough to run per request. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The viewer's place in [0, 100) for one label: each label splits viewers independently of the others. */
export const viewerBucket = (label: string, userId: string) => (fnv1a(`${label}\0${userId}`) % 10_000) / 100;

export function overrideLabelsOf(supergraph: Supergraph): string[] {
  const joinField = supergraph.schema.directives().find((directive) => directive.name === 'join__field');
  const labels = new Set<string>();
  for (const application of joinField?.applications() ?? []) {
    const label = (application.arguments() as { overrideLabel?: unknown }).overrideLabel;
    if (typeof label === 'string') labels.add(label);
  }
  return [...labels].sort();
}

/** Undefined when the supergraph has no labels: then nothing is resolved per request. */
export function createOverrideLabels(supergraph: Supergraph, random: () => number = Math.random): OverrideLabels | undefined {
  const labels = overrideLabelsOf(supergraph);
  if (labels.length === 0) return undefined;
  const percents = new Map(labels.flatMap((label) => {
    const match = PERCENT.exec(label);
    return match ? [[label, Number(match[1])] as const] : [];
  }));
  return {
    labels,
    resolve(viewer, requested) {
      const trusted = requested !== undefined && viewer?.scopes?.includes(OVERRIDE_LABELS_SCOPE) === true;
      const named = trusted ? new Set(requested.split(',').map((label) => label.trim())) : undefined;
      const conditions = new Map<string, boolean>();
      let key = '';
      for (const label of labels) {
        const percent = percents.get(label);
        const on = named?.has(label) || (percent !== undefined && (viewer ? viewerBucket(label, viewer.userId) : random() * 100) < percent);
        conditions.set(label, on);
        key += on ? '1' : '0';
      }
      return { key, conditions };
    },
  };
}
