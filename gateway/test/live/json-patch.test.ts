// The RFC 6902 patches live queries send: applied in order by fast-json-patch (a reference implementation that
// validates every operation), each must turn the answer before into one deep-equal to the answer after.
import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { jsonPatch } from '../../src/live/json-patch.ts';

const applied = (before: unknown, after: unknown) => {
  const patch = jsonPatch(before, after);
  const document = structuredClone(before);
  return { patch, result: fastJsonPatch.applyPatch(document, fastJsonPatch.deepClone(patch) as fastJsonPatch.Operation[], true, false).newDocument };
};

const CASES: [string, unknown, unknown][] = [
  ['a renamed field', { user: { id: '1', name: 'Ada' } }, { user: { id: '1', name: 'Grace' } }],
  ['a list that grew at its end', { orders: [{ id: 1 }, { id: 2 }] }, { orders: [{ id: 1 }, { id: 2 }, { id: 3 }] }],
  ['a list that shrank', { orders: [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }] }, { orders: [{ id: 1 }] }],
  ['a list that gained an item at its head', { orders: [{ id: 2 }, { id: 3 }] }, { orders: [{ id: 1 }, { id: 2 }, { id: 3 }] }],
  ['a member that appeared and one that went', { user: { a: 1, b: 2 } }, { user: { b: 2, c: 3 } }],
  ['an object that became null, and back', { user: { name: 'x' }, other: null }, { user: null, other: { name: 'y' } }],
  ['names that need escaping in a pointer', { 'a/b': 1, 'c~d': { 'e/~f': 2 } }, { 'a/b': 10, 'c~d': { 'e/~f': 20 } }],
  ['members named like Object.prototype', { user: { constructor: 1, x: 1 } }, { user: { x: 1, toString: 2 } }],
  ['the whole document changing type', { data: 1 }, [1, 2]],
  ['nothing', { user: { id: '1', orders: [1, 2] } }, { user: { id: '1', orders: [1, 2] } }],
];

describe('jsonPatch', () => {
  it.each(CASES)('turns the answer before into the answer after: %s', (_, before, after) => {
    const { result } = applied(before, after);
    expect(result).toEqual(after);
  });

  it('sends only what changed', () => {
    expect(jsonPatch({ user: { id: '1', name: 'Ada', orders: [1, 2, 3] } }, { user: { id: '1', name: 'Grace', orders: [1, 2, 3] } })).toEqual([
      { op: 'replace', path: '/user/name', value: 'Grace' },
    ]);
    expect(jsonPatch({ a: [1, 2, 3] }, { a: [1, 2, 3] })).toEqual([]);
  });

  it('removes from the end of a list, so that every index names the item it meant', () => {
    expect(jsonPatch({ a: [1, 2, 3] }, { a: [1] })).toEqual([
      { op: 'remove', path: '/a/2' },
      { op: 'remove', path: '/a/1' },
    ]);
  });
});
