import { describe, expect, it } from 'vitest';
import { mergeParts, MultipartReader, type DeferPart } from '../src/multipart.ts';

const HEAD = 'content-type: application/json; charset=utf-8\r\n\r\n';
// As the gateway writes an answer in parts: each part with the delimiter after it, a last part, then the close.
const first = { data: { users: { edges: [{ node: { id: '1', name: 'Ada' } }, { node: { id: '2', name: 'Bob' } }] } }, hasNext: true };
const second = { incremental: [{ data: { orderCount: 2, orders: { edges: [{ node: { id: 'o1' } }] } }, path: ['users', 'edges', 0, 'node'] }], hasNext: true };
const third = { incremental: [{ data: { orderCount: 0, orders: { edges: [] } }, path: ['users', 'edges', 1, 'node'] }], hasNext: true };
const chunks = [`\r\n---\r\n${HEAD}${JSON.stringify(first)}\r\n---`, `\r\n${HEAD}${JSON.stringify(second)}\r\n---`, `\r\n${HEAD}${JSON.stringify(third)}\r\n---`, `\r\n${HEAD}{"hasNext":false}\r\n-----\r\n`];
const body = chunks.join('');

describe('MultipartReader', () => {
  it('completes a part only when the delimiter after it has arrived, and ends at the close delimiter', () => {
    const reader = new MultipartReader();
    // The first part's JSON whole, but not yet its closing delimiter: not a part yet.
    expect(reader.push(chunks[0]!.slice(0, -5))).toBe(0);
    expect(reader.push(chunks[0]!.slice(-5, -2))).toBe(0);
    expect(reader.push(chunks[0]!.slice(-2))).toBe(1);
    expect(reader.parts).toEqual([first]);
    expect(reader.ended).toBe(false);
    expect(reader.push(chunks[1]! + chunks[2]!)).toBe(2);
    expect(reader.push(chunks[3]!)).toBe(1);
    expect(reader.parts).toEqual([first, second, third, { hasNext: false }]);
    expect(reader.ended).toBe(true);
  });

  it('reads the same parts whatever the chunking: byte by byte, and split inside multi-byte characters', () => {
    const text = body.replace('Ada', 'Åda ✓');
    const bytes = Buffer.from(text);
    const reader = new MultipartReader();
    const completedAt: number[] = [];
    for (let i = 0; i < bytes.length; i += 1) if (reader.push(bytes.subarray(i, i + 1)) > 0) completedAt.push(i);
    expect(reader.parts).toHaveLength(4);
    expect((reader.parts[0] as typeof first).data.users.edges[0]!.node.name).toBe('Åda ✓');
    expect(reader.ended).toBe(true);
    // The first part is whole at the last byte of the `\r\n---` after it.
    expect(completedAt[0]).toBe(Buffer.byteLength(chunks[0]!.replace('Ada', 'Åda ✓')) - 1);
  });

  it('takes an answer in one part (a cached hit), a body opening without CRLF, and parts without headers', () => {
    const one = new MultipartReader();
    expect(one.push(`\r\n---\r\n${HEAD}{"data":{"a":1},"hasNext":false}\r\n-----\r\n`)).toBe(1);
    expect(one.parts).toEqual([{ data: { a: 1 }, hasNext: false }]);
    expect(one.ended).toBe(true);
    const bare = new MultipartReader();
    bare.push('---\r\n\r\n{"data":{"a":1},"hasNext":true}\r\n---\r\n\r\n{"hasNext":false}\r\n-----\r\n');
    expect(bare.parts).toEqual([{ data: { a: 1 }, hasNext: true }, { hasNext: false }]);
    expect(bare.ended).toBe(true);
  });

  it('ignores what follows the close delimiter, and throws on a part that is not JSON', () => {
    const reader = new MultipartReader();
    reader.push(`${body}epilogue\r\n---\r\n${HEAD}{}\r\n---`);
    expect(reader.parts).toHaveLength(4);
    expect(() => new MultipartReader().push(`\r\n---\r\n${HEAD}not json\r\n---`)).toThrow();
  });
});

describe('mergeParts', () => {
  it('merges each deferred item at its path (list indexes included) into the first part’s data', () => {
    const merged = mergeParts([first, second, third, { hasNext: false }]);
    expect(merged).toEqual({
      data: { users: { edges: [{ node: { id: '1', name: 'Ada', orderCount: 2, orders: { edges: [{ node: { id: 'o1' } }] } } }, { node: { id: '2', name: 'Bob', orderCount: 0, orders: { edges: [] } } }] } },
      errors: [],
      hasNext: false,
    });
    // The parts themselves are left as they were.
    expect(first.data.users.edges[0]!.node).toEqual({ id: '1', name: 'Ada' });
  });

  it('merges nested objects field by field, appends streamed items, and gathers the errors of every part', () => {
    const parts: DeferPart[] = [
      { data: { user: { id: '1', orders: { totalCount: 2, edges: [{ node: { id: 'a' } }] } } }, hasNext: true },
      { incremental: [{ data: { orders: { edges: [{ node: { status: 'PAID' } }] } }, path: ['user'], label: 'more', errors: [{ message: 'partial' }] }], hasNext: true },
      { incremental: [{ items: [{ node: { id: 'b' } }], path: ['user', 'orders', 'edges'] }], errors: [{ message: 'late' }], hasNext: false },
    ];
    expect(mergeParts(parts)).toEqual({
      data: { user: { id: '1', orders: { totalCount: 2, edges: [{ node: { id: 'a', status: 'PAID' } }, { node: { id: 'b' } }] } } },
      errors: [{ message: 'partial' }, { message: 'late' }],
      hasNext: false,
    });
  });

  it('throws when an item’s path leads nowhere, and when there is no part', () => {
    expect(() => mergeParts([first, { incremental: [{ data: { x: 1 }, path: ['users', 'edges', 5, 'node'] }], hasNext: false }])).toThrow(/leads nowhere/);
    expect(() => mergeParts([])).toThrow();
  });
});
