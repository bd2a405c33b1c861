/** One RFC 6902 operation, of the kinds a diff of two JSON documents needs. */
export type JsonPatchOperation = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** RFC 6901: `~` and `/` in a member name are escaped. */
const pointer = (path: string, key: string | number) => `${path}/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * The RFC 6902 patch that turns JSON value `before` into `after`: members added, removed or replaced where they
 * differ; lists compared index by index, then shortened or lengthened at the end (a list that gained an item
 * at its head costs a replace per item after it, which is what a GraphQL answer's lists usually allow). Applied
 * in order to `before`, it gives a document deep-equal to `after`.
 */
export function jsonPatch(before: unknown, after: unknown, path = '', operations: JsonPatchOperation[] = []): JsonPatchOperation[] {
  if (before === after) return operations;
  if (isObject(before) && isObject(after)) {
    for (const key of Object.keys(before)) if (!Object.hasOwn(after, key)) operations.push({ op: 'remove', path: pointer(path, key) });
    for (const [key, value] of Object.entries(after)) {
      if (Object.hasOwn(before, key)) jsonPatch(before[key], value, pointer(path, key), operations);
      else operations.push({ op: 'add', path: pointer(path, key), value });
    }
    return operations;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const common = Math.min(before.length, after.length);
    for (let index = 0; index < common; index += 1) jsonPatch(before[index], after[index], pointer(path, index), operations);
    // From the end, so that each index still names the item it meant.
    for (let index = before.length - 1; index >= after.length; index -= 1) operations.push({ op: 'remove', path: pointer(path, index) });
    for (let index = before.length; index < after.length; index += 1) operations.push({ op: 'add', path: pointer(path, index), value: after[index] });
    return operations;
  }
  operations.push({ op: 'replace', path, value: after });
  return operations;
}
