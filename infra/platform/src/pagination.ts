import { publicError } from './errors.ts';

export const MAX_PAGE_SIZE = 100;

/** GraphQL Int is 32-bit: an amount beyond it can be stored but never returned. */
export const GRAPHQL_MAX_INT = 2_147_483_647;

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface Connection<TNode> {
  edges: { cursor: string; node: TNode }[];
  pageInfo: PageInfo;
}

/** `first` is bounded rather than clamped: a client asking for 10 000 rows should learn that it can't. */
export function parseFirst(first: number | null | undefined, field = 'first'): number {
  const value = first ?? 20;
  if (!Number.isInteger(value) || value < 0 || value > MAX_PAGE_SIZE) {
    throw publicError('BAD_USER_INPUT', `"${field}" must be between 0 and ${MAX_PAGE_SIZE}`, field);
  }
  return value;
}

/** Cursors are opaque to clients: base64url of a versioned, typed key. */
export function encodeCursor(kind: string, id: number): string {
  return Buffer.from(`v1:${kind}:${id}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | null | undefined, field = 'after'): number | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const match = /^v1:([A-Za-z]+):(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match || match[1] !== kind) throw publicError('BAD_USER_INPUT', `"${field}" is not a valid cursor`, field);
  return Number(match[2]);
}

// Cursors are encoded when read, once per read: a page whose cursors no client selects (the gateway's nested
// entity fetches select none) encodes none, where encoding every row's built a string per row of every page.
class CursorEdge<TNode extends { id: number }> {
  constructor(
    private readonly kind: string,
    readonly node: TNode,
  ) {}
  get cursor(): string {
    return encodeCursor(this.kind, this.node.id);
  }
}

class CursorPageInfo implements PageInfo {
  constructor(
    private readonly kind: string,
    readonly hasNextPage: boolean,
    private readonly last: { id: number } | undefined,
  ) {}
  get endCursor(): string | null {
    return this.last ? encodeCursor(this.kind, this.last.id) : null;
  }
}

/** Turns `first + 1` fetched rows into a Relay connection; the extra row only tells whether a next page exists. */
export function toConnection<TRow extends { id: number }>(kind: string, rows: readonly TRow[], first: number): Connection<TRow> {
  const size = Math.min(rows.length, first);
  const edges = new Array<CursorEdge<TRow>>(size);
  for (let index = 0; index < size; index += 1) edges[index] = new CursorEdge(kind, rows[index]!);
  return { edges, pageInfo: new CursorPageInfo(kind, rows.length > first, rows[size - 1]) };
}

const ID = /^[1-9]\d{0,14}$/;

/** Ids are positive integers rendered as strings; anything else cannot name a row. */
export const tryParseId = (id: string): number | undefined => (ID.test(id) ? Number(id) : undefined);

/** For ids a client typed: one that cannot name a row is bad input. */
export function parseId(id: string, field = 'id'): number {
  const parsed = tryParseId(id);
  if (parsed === undefined) throw publicError('BAD_USER_INPUT', `"${field}" is not a valid id`, field);
  return parsed;
}
