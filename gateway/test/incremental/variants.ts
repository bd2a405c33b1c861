import { Kind, visit, type ASTNode, type DocumentNode, type InlineFragmentNode, type SelectionSetNode } from 'graphql';
import { expect } from 'vitest';

/** Operations turned into deferred ones, and the client's side of incremental delivery, for the tests. */

const deferred = (selectionSet: SelectionSetNode, label: string): InlineFragmentNode => ({
  kind: Kind.INLINE_FRAGMENT,
  directives: [{ kind: Kind.DIRECTIVE, name: { kind: Kind.NAME, value: 'defer' }, arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'label' }, value: { kind: Kind.STRING, value: label } }] }],
  selectionSet,
});

/**
 * The document with every selection set of a field that selects two things or more split: its first
 * selection stays, the rest moves into `... @defer`. `outermost` splits only the root fields' selections;
 * otherwise every level is split, so deferred fragments nest in deferred fragments and sit inside lists.
 */
export function deferVariant(document: DocumentNode, outermost: boolean): DocumentNode {
  let labels = 0;
  return visit(document, {
    Field: {
      leave(field, _key, _parent, _path, ancestors) {
        if (!field.selectionSet || field.selectionSet.selections.length < 2) return undefined;
        const depth = ancestors.filter((node) => (node as ASTNode).kind === Kind.FIELD).length;
        if (outermost && depth > 0) return undefined;
        const [first, ...rest] = field.selectionSet.selections;
        return { ...field, selectionSet: { ...field.selectionSet, selections: [first!, deferred({ kind: Kind.SELECTION_SET, selections: rest }, `d${labels++}`)] } };
      },
    },
  });
}

/** Apollo Client's merge: objects key by key, lists element by element. */
function merge(target: unknown, source: unknown): unknown {
  if (Array.isArray(target) && Array.isArray(source)) return target.map((element, index) => (index in source ? merge(element, source[index]) : element));
  if (target && source && typeof target === 'object' && typeof source === 'object') {
    const merged: Record<string, unknown> = { ...(target as Record<string, unknown>) };
    for (const [key, value] of Object.entries(source)) merged[key] = key in merged ? merge(merged[key], value) : value;
    return merged;
  }
  return source;
}

export function mergeAt(data: unknown, path: readonly (string | number)[], patch: unknown): unknown {
  if (path.length === 0) return merge(data, patch);
  const [head, ...rest] = path;
  if (Array.isArray(data)) return data.map((element, index) => (index === head ? mergeAt(element, rest, patch) : element));
  const object = data as Record<string, unknown>;
  expect(object?.[head as string], `an item's path ${JSON.stringify(path)} names an object the client holds`).toBeTypeOf('object');
  return { ...object, [head as string]: mergeAt(object[head as string], rest, patch) };
}


/** One payload of a multipart answer (deferSpec=20220824). */
export interface Payload {
  data?: unknown;
  errors?: unknown[];
  incremental?: { data?: unknown; path: (string | number)[]; label?: string; errors?: unknown[] }[];
  hasNext?: boolean;
}

/** The parts of a `multipart/mixed; boundary="-"` body as Apollo Server frames them. */
export function readMultipart(body: string): Payload[] {
  expect(body.startsWith('\r\n---\r\n'), 'the body opens with the boundary').toBe(true);
  expect(body.endsWith('\r\n-----\r\n'), 'the body closes with the final boundary').toBe(true);
  return body
    .slice('\r\n---'.length, -'\r\n-----\r\n'.length)
    .split('\r\n---')
    .map((part) => {
      const [head, json] = part.split('\r\n\r\n');
      expect(head?.trim().toLowerCase()).toBe('content-type: application/json; charset=utf-8');
      return JSON.parse(json!) as Payload;
    });
}

/** What a client holds at the end: the first payload's data with every item merged in at its path. */
export function mergePayloads(payloads: readonly Payload[]): unknown {
  let data = payloads[0]?.data;
  for (const payload of payloads.slice(1)) for (const item of payload.incremental ?? []) if (item.data) data = mergeAt(data, item.path, item.data);
  return data;
}
