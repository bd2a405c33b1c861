import { createHash } from 'node:crypto';
import { and, eq, lt, ne, sql } from 'drizzle-orm';
import { index, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import type { GraphQLFieldResolver, GraphQLResolveInfo } from 'graphql';
import type { Database } from '../db/index.ts';
import type { DomainEvent } from './index.ts';

/**
 * Idempotency keys: a client sends `Idempotency-Key` with a mutation; the gateway checks it and signs it into
 * the identity it sends each subgraph (a client cannot set it at a subgraph); each mutation field stores its
 * result under the key in the transaction of its write. A retry with the same key gets the stored result instead
 * of writing again.
 */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/** Printable, no spaces or commas (a repeated header arrives joined by ", "), long enough for a UUID or a ULID. */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;

/** How long a key is remembered: a retry after that writes again. */
export const IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 3600;

/** How long a retry waits for its twin still in flight (holding the key's row) before it answers IN_PROGRESS. */
export const IDEMPOTENCY_WAIT_MS = 5_000;

/** The same key with another request (another operation, other variables, another field's arguments). */
export const IDEMPOTENCY_KEY_REUSED = 'IDEMPOTENCY_KEY_REUSED';
/** The first request with this key is still running after IDEMPOTENCY_WAIT_MS; retry later with the same key. */
export const IDEMPOTENCY_KEY_IN_PROGRESS = 'IDEMPOTENCY_KEY_IN_PROGRESS';

/** What the gateway signs into a subgraph request: the client's key and a fingerprint of the client's request. */
export interface IdempotencyClaim {
  key: string;
  /** sha256 of the client's document, operation name and variables (requestFingerprint). */
  request: string;
}

/**
 * One row per (viewer, key, mutation field): the field is its response key (alias or name), so two fields of one
 * operation are two writes, and a retry of the operation finds each. Subgraphs re-export this table from their
 * schema, which puts it in their migrations.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    subject: text('subject').notNull(),
    key: text('key').notNull(),
    field: text('field').notNull(),
    request: text('request').notNull(),
    /** sha256 of the field's name and its arguments as this subgraph received them. */
    fingerprint: text('fingerprint').notNull(),
    /** The field's result, as encodeResult stored it; null only inside the transaction that is writing it. */
    result: jsonb('result'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.subject, table.key, table.field] }), index('idempotency_keys_created_at_idx').on(table.createdAt)],
);

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

/** JSON with object keys sorted, so the same values always give the same text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, raw: unknown) =>
    raw && typeof raw === 'object' && !Array.isArray(raw)
      ? Object.fromEntries(Object.entries(raw as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : raw,
  );
}

/** The client's request as the gateway saw it: a retry must send the same document and variables. */
export const requestFingerprint = (request: { queryHash?: string; operationName?: string | null; variables?: Record<string, unknown> | null }) =>
  sha256(`${request.queryHash ?? ''}\n${request.operationName ?? ''}\n${canonicalJson(request.variables ?? {})}`);

/** Undefined without the header; throws for a header that is not a valid key. */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !IDEMPOTENCY_KEY_PATTERN.test(header)) throw new InvalidIdempotencyKeyError();
  return header;
}

export class InvalidIdempotencyKeyError extends Error {
  override name = 'InvalidIdempotencyKeyError';
  constructor() {
    super('Idempotency-Key must be 8 to 128 characters among A-Z a-z 0-9 . _ : - (a UUID, for instance), sent once');
  }
}

/** The mutation field running now: its response key, its name and its arguments. */
export interface MutationField {
  field: string;
  name: string;
  args: Record<string, unknown>;
  /** Set by the first transaction of the field: a second one could not be covered by the key (see createUnitOfWork). */
  claimed: boolean;
}

/**
 * One request's writes: where the events they commit go, and the mutation field resolving now. Root mutation
 * fields run one after another, so one slot per request is enough; it lives in the request's context rather
 * than in async context, whose promise hooks would tax every promise of the process.
 */
export interface RequestWrites {
  committed(events: DomainEvent[]): void;
  field?: MutationField;
}

// Where createSubgraphApp puts each request's writes in its context, under a key no resolver can name.
export const REQUEST_WRITES = Symbol('requestWrites');

/**
 * Wraps each root Mutation resolver so that the unit of work knows which field it writes for. Done once for every
 * subgraph by createSubgraphApp, so no mutation can be left out.
 */
export function scopeMutationFields(resolvers: Record<string, object>): Record<string, object> {
  const mutation = resolvers.Mutation as Record<string, GraphQLFieldResolver<unknown, unknown>> | undefined;
  if (!mutation) return resolvers;
  const scoped = Object.fromEntries(
    Object.entries(mutation).map(([name, resolve]) => [
      name,
      (parent: unknown, args: Record<string, unknown>, context: unknown, info: GraphQLResolveInfo) => {
        const writes = (context as { [REQUEST_WRITES]?: RequestWrites })[REQUEST_WRITES];
        if (!writes) return resolve(parent, args, context, info);
        const field: MutationField = { field: String(info.path.key), name: info.fieldName, args, claimed: false };
        writes.field = field;
        // The field's scope ends with its resolver; what the executor resolves below it writes for no field.
        const done = () => {
          if (writes.field === field) writes.field = undefined;
        };
        try {
          const result = resolve(parent, args, context, info);
          if (result instanceof Promise) return result.finally(done);
          done();
          return result;
        } catch (error) {
          done();
          throw error;
        }
      },
    ]),
  );
  return { ...resolvers, Mutation: scoped };
}

/** The field's own fingerprint: its name and arguments, whatever the operation around it. */
export const fieldFingerprint = (field: Pick<MutationField, 'name' | 'args'>) => sha256(`${field.name}\n${canonicalJson(field.args)}`);

// Results are stored as JSON; Dates (row timestamps) are tagged so a replay hands resolvers the same types.
const DATE_TAG = '$date';

export function encodeResult(value: unknown): unknown {
  if (value === undefined) return null;
  return JSON.parse(
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, raw: unknown) {
      const original = this[key];
      return original instanceof Date ? { [DATE_TAG]: original.toISOString() } : raw;
    }),
  ) as unknown;
}

export function decodeResult(stored: unknown): unknown {
  if (Array.isArray(stored)) return stored.map(decodeResult);
  if (stored && typeof stored === 'object') {
    const entries = Object.entries(stored as Record<string, unknown>);
    if (entries.length === 1 && entries[0]?.[0] === DATE_TAG && typeof entries[0][1] === 'string') return new Date(entries[0][1]);
    return Object.fromEntries(entries.map(([key, value]) => [key, decodeResult(value)]));
  }
  return stored;
}

type AnyDatabase = Database<Record<string, unknown>>;

export interface IdempotentWrite {
  subject: string;
  key: string;
  field: string;
  request: string;
  fingerprint: string;
}

const expired = sql`now() - make_interval(secs => ${IDEMPOTENCY_KEY_TTL_SECONDS})`;

/** SQL only. `claim` and `find` run inside the write's transaction. */
export function createIdempotencyRepository(db: AnyDatabase) {
  const row = (write: IdempotentWrite) =>
    and(eq(idempotencyKeys.subject, write.subject), eq(idempotencyKeys.key, write.key), eq(idempotencyKeys.field, write.field));
  return {
    /**
     * Takes the key for this field: true when this transaction now holds it (new, or expired and taken over). A
     * twin in flight holds the row's index entry until it ends, so this waits for it; false once it committed.
     */
    claim: async (write: IdempotentWrite): Promise<boolean> => {
      const taken = await db
        .insert(idempotencyKeys)
        .values({ ...write, result: null })
        .onConflictDoUpdate({
          target: [idempotencyKeys.subject, idempotencyKeys.key, idempotencyKeys.field],
          set: { request: write.request, fingerprint: write.fingerprint, result: null, createdAt: sql`now()` },
          setWhere: lt(idempotencyKeys.createdAt, expired),
        })
        .returning({ subject: idempotencyKeys.subject });
      return taken.length > 0;
    },

    find: async (write: IdempotentWrite) => {
      const [found] = await db
        .select({ request: idempotencyKeys.request, fingerprint: idempotencyKeys.fingerprint, result: idempotencyKeys.result })
        .from(idempotencyKeys)
        .where(row(write));
      return found;
    },

    /** True when another field stored this key for a different request: the key was reused. */
    usedByAnotherRequest: async (write: IdempotentWrite): Promise<boolean> => {
      const [other] = await db
        .select({ field: idempotencyKeys.field })
        .from(idempotencyKeys)
        .where(
          and(
            eq(idempotencyKeys.subject, write.subject),
            eq(idempotencyKeys.key, write.key),
            ne(idempotencyKeys.request, write.request),
            sql`${idempotencyKeys.createdAt} >= ${expired}`,
          ),
        )
        .limit(1);
      return other !== undefined;
    },

    complete: async (write: IdempotentWrite, result: unknown): Promise<void> => {
      await db.update(idempotencyKeys).set({ result }).where(row(write));
    },

    /** Deletes up to `limit` expired keys (a bounded statement, however many expired at once). */
    prune: async (limit = 1_000): Promise<void> => {
      await db.execute(
        sql`delete from ${idempotencyKeys} where ctid in (select ctid from ${idempotencyKeys} where ${idempotencyKeys.createdAt} < ${expired} limit ${limit})`,
      );
    },
  };
}
