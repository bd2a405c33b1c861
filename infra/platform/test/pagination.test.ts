import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, MAX_PAGE_SIZE, parseFirst, parseId, toConnection } from '../src/pagination.ts';

/** Asserts that `call` throws the public BAD_USER_INPUT error a client would see, naming `field`. */
function expectBadUserInput(call: () => unknown, field: string): GraphQLError {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(GraphQLError);
  const error = thrown as GraphQLError;
  expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field });
  expect(error.message).toContain(`"${field}"`);
  return error;
}

describe('parseFirst', () => {
  it('accepts every page size from 0 to 100', () => {
    expect(MAX_PAGE_SIZE).toBe(100);
    for (let first = 0; first <= 100; first++) expect(parseFirst(first)).toBe(first);
  });

  it('defaults to 20 when the client leaves it out', () => {
    expect(parseFirst(undefined)).toBe(20);
    expect(parseFirst(null)).toBe(20);
  });

  it('rejects -1 and 101 (and non-integers) as BAD_USER_INPUT instead of clamping', () => {
    const error = expectBadUserInput(() => parseFirst(-1), 'first');
    expect(error.message).toBe('"first" must be between 0 and 100');
    expectBadUserInput(() => parseFirst(101), 'first');
    expectBadUserInput(() => parseFirst(10_000), 'first');
    expectBadUserInput(() => parseFirst(2.5), 'first');
    expectBadUserInput(() => parseFirst(Number.NaN), 'first');
  });

  it('names the argument it was given', () => {
    expectBadUserInput(() => parseFirst(500, 'ordersFirst'), 'ordersFirst');
  });
});

describe('cursors', () => {
  it('round-trip through encodeCursor and decodeCursor', () => {
    for (const id of [1, 42, 2 ** 31, 999_999_999_999_999]) {
      expect(decodeCursor('user', encodeCursor('user', id))).toBe(id);
    }
  });

  it('are opaque url-safe strings', () => {
    const cursor = encodeCursor('order', 123);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(cursor).not.toContain('123');
  });

  it('treat a missing cursor as "from the start"', () => {
    expect(decodeCursor('user', undefined)).toBeUndefined();
    expect(decodeCursor('user', null)).toBeUndefined();
  });

  it('reject a cursor minted for another kind', () => {
    expectBadUserInput(() => decodeCursor('user', encodeCursor('order', 5)), 'after');
  });

  it('reject garbage, tampered and empty cursors as BAD_USER_INPUT', () => {
    const garbage = [
      'not a cursor',
      '!!!',
      '',
      Buffer.from('v1:user:abc').toString('base64url'),
      Buffer.from('v2:user:5').toString('base64url'),
      Buffer.from('v1:user:5; drop table users').toString('base64url'),
      Buffer.from('v1:user:1234567890123456').toString('base64url'),
    ];
    for (const cursor of garbage) expectBadUserInput(() => decodeCursor('user', cursor), 'after');
    expectBadUserInput(() => decodeCursor('user', 'garbage', 'before'), 'before');
  });
});

describe('toConnection', () => {
  const rows = [{ id: 3 }, { id: 5 }, { id: 8 }];

  // Edges and page info read as a resolver reads them (their cursors are encoded when read).
  const plain = ({ edges, pageInfo }: ReturnType<typeof toConnection>) => ({
    edges: edges.map(({ cursor, node }) => ({ cursor, node })),
    pageInfo: { hasNextPage: pageInfo.hasNextPage, endCursor: pageInfo.endCursor },
  });

  it('uses the extra fetched row only to report hasNextPage', () => {
    const connection = toConnection('user', rows, 2);
    expect(plain(connection)).toEqual({
      edges: [
        { cursor: encodeCursor('user', 3), node: { id: 3 } },
        { cursor: encodeCursor('user', 5), node: { id: 5 } },
      ],
      pageInfo: { hasNextPage: true, endCursor: encodeCursor('user', 5) },
    });
    expect(connection.edges[0]!.node).toBe(rows[0]);
    expect(decodeCursor('user', connection.pageInfo.endCursor)).toBe(5);
    expect(decodeCursor('user', connection.edges[1]!.cursor)).toBe(5);
  });

  it('reports the last page and an empty page', () => {
    expect(plain(toConnection('user', rows, 3)).pageInfo).toEqual({ hasNextPage: false, endCursor: encodeCursor('user', 8) });
    expect(plain(toConnection('user', [], 10))).toEqual({ edges: [], pageInfo: { hasNextPage: false, endCursor: null } });
  });
});

describe('parseId', () => {
  it('accepts positive integer strings', () => {
    expect(parseId('1')).toBe(1);
    expect(parseId('42')).toBe(42);
    expect(parseId('999999999999999')).toBe(999_999_999_999_999);
  });

  it("rejects 'abc', '0' and '-1' as BAD_USER_INPUT", () => {
    for (const id of ['abc', '0', '-1']) expectBadUserInput(() => parseId(id), 'id');
  });

  it('rejects anything else that cannot name a row', () => {
    for (const id of ['', '01', '1.5', '1e3', ' 1', '1 ', '0x10', '9999999999999999']) {
      expectBadUserInput(() => parseId(id, 'userId'), 'userId');
    }
  });
});
