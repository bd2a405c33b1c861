import { expect } from 'vitest';

/** What the stack's tests of incremental delivery share: merging parts as Apollo Client does. */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Data = { [key: string]: Json };

/** A payload as far as merging goes: the first one's `data`, later ones' `incremental` items. */
export interface MergeablePayload {
  data?: Data | null;
  incremental?: { data?: Data | null; path: (string | number)[] }[];
}

export const isObject = (value: Json | undefined): value is { [key: string]: Json } => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `source` merged into `target` in place: objects key by key, lists element by element. */
function deepMerge(target: Json, source: Json): Json {
  if (isObject(target) && isObject(source)) {
    for (const [key, value] of Object.entries(source)) target[key] = key in target ? deepMerge(target[key]!, value) : value;
    return target;
  }
  if (Array.isArray(target) && Array.isArray(source)) {
    source.forEach((value, index) => (target[index] = index < target.length ? deepMerge(target[index]!, value) : value));
    return target;
  }
  return source;
}

/** The first payload's data with every later item's data merged in at its path, in arrival order. */
export function mergedData(payloads: readonly MergeablePayload[]): Data | null | undefined {
  const data = structuredClone(payloads[0]?.data);
  for (const item of payloads.slice(1).flatMap((payload) => payload.incremental ?? [])) {
    if (!item.data) continue;
    let at: Json | undefined = data ?? undefined;
    for (const key of item.path) at = isObject(at) ? at[String(key)] : Array.isArray(at) && typeof key === 'number' ? at[key] : undefined;
    expect(isObject(at), `the object at ${JSON.stringify(item.path)} was delivered before its deferred fragment`).toBe(true);
    deepMerge(at!, item.data);
  }
  return data;
}
