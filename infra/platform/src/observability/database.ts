import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Telemetry } from './telemetry.ts';

/** Called as a statement starts; the function it returns is called once when the statement settles. */
export type QueryObserver = (statement: string) => (error?: unknown) => void;

/**
 * What wants a connection now: statements outside a transaction, plus open transactions (each holds one).
 * Above the pool size, the rest wait for a connection.
 */
export interface PoolUse {
  transactionStarted(): () => void;
}

/**
 * `db_` metrics and, when tracing is on, a client span per statement (a child of whatever request runs it),
 * for one service's database.
 */
export function observeDatabase({ metrics, tracer }: Telemetry, database: string, maxConnections: number): { observe: QueryObserver; pool: PoolUse } {
  const durations = metrics.histogram({
    name: 'db_query_duration_seconds',
    help: 'SQL statements from send to result, by database and statement kind',
    labelNames: ['db', 'operation'] as const,
  });
  const failures = metrics.counter({ name: 'db_query_errors_total', help: 'SQL statements that failed, by database', labelNames: ['db'] as const });
  const inUse = metrics.gauge({
    name: 'db_operations_in_flight',
    help: 'Statements outside a transaction plus open transactions: each holds or waits for a pool connection',
    labelNames: ['db'] as const,
  });
  const max = metrics.gauge({ name: 'db_pool_connections_max', help: 'The pool size', labelNames: ['db'] as const });
  max.set({ db: database }, maxConnections);
  inUse.set({ db: database }, 0);

  const observe: QueryObserver = (statement) => {
    const operation = /^\s*(\w+)/.exec(statement)?.[1]?.toUpperCase() ?? 'OTHER';
    const started = performance.now();
    const span = tracer?.startSpan(`${operation} ${database}`, {
      kind: SpanKind.CLIENT,
      attributes: { 'db.system.name': 'postgresql', 'db.namespace': database, 'db.operation.name': operation, 'db.query.text': statement },
    });
    return (error) => {
      durations.observe({ db: database, operation }, (performance.now() - started) / 1000);
      if (error) {
        failures.inc({ db: database });
        span?.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? 'error' });
      }
      span?.end();
    };
  };
  return {
    observe,
    pool: {
      transactionStarted: () => {
        inUse.inc({ db: database });
        return () => inUse.dec({ db: database });
      },
    },
  };
}

type Settle = (error?: unknown) => void;

/**
 * postgres.js runs a query when it is first awaited, and `.values()` returns the same object: wrapping its
 * `then` times exactly the execution, whatever drizzle chains before awaiting. Inside a transaction
 * postgres.js attaches a handler of its own too, so the first `then` starts the observation and every later
 * one shares it.
 */
function observeThenable<T extends PromiseLike<unknown>>(query: T, start: () => Settle): T {
  const then = query.then.bind(query);
  let observed: PromiseLike<unknown> | undefined;
  Object.defineProperty(query, 'then', {
    configurable: true,
    value: (onFulfilled?: (value: unknown) => unknown, onRejected?: (reason: unknown) => unknown) => {
      if (!observed) {
        const settle = start();
        observed = then(
          (value) => {
            settle();
            return value;
          },
          (reason: unknown) => {
            settle(reason);
            throw reason;
          },
        );
      }
      return observed.then(onFulfilled, onRejected);
    },
  });
  return query;
}

interface PostgresLike {
  unsafe(...args: unknown[]): PromiseLike<unknown>;
  begin(...args: unknown[]): Promise<unknown>;
  savepoint?(...args: unknown[]): Promise<unknown>;
}

/** Instruments a postgres.js client (and every transaction it opens) in place. */
export function instrumentPostgres<T>(sql: T, observe: QueryObserver, pool: PoolUse, inTransaction = false): T {
  const client = sql as T & PostgresLike;
  const unsafe = client.unsafe.bind(client);
  client.unsafe = (...args: unknown[]) =>
    observeThenable(unsafe(...args), () => {
      const settle = observe(String(args[0]));
      const release = inTransaction ? undefined : pool.transactionStarted();
      return (error) => {
        release?.();
        settle(error);
      };
    });
  for (const method of ['begin', 'savepoint'] as const) {
    const original = client[method]?.bind(client);
    if (!original) continue;
    client[method] = async (...args: unknown[]) => {
      const body = args.pop() as (tx: PostgresLike) => unknown;
      const release = method === 'begin' ? pool.transactionStarted() : undefined;
      try {
        return await original(...args, (tx: PostgresLike) => body(instrumentPostgres(tx, observe, pool, true)));
      } finally {
        release?.();
      }
    };
  }
  return client;
}

interface PgliteLike {
  query(...args: unknown[]): Promise<unknown>;
  transaction(fn: (tx: PgliteLike) => Promise<unknown>): Promise<unknown>;
}

/** Instruments an embedded PGlite (one connection) in place. */
export function instrumentPglite<T>(db: T, observe: QueryObserver, pool: PoolUse): T {
  const client = db as T & PgliteLike;
  const wrapQuery = (target: PgliteLike) => {
    const query = target.query.bind(target);
    target.query = async (...args: unknown[]) => {
      const settle = observe(String(args[0]));
      try {
        const result = await query(...args);
        settle();
        return result;
      } catch (error) {
        settle(error);
        throw error;
      }
    };
    return target;
  };
  wrapQuery(client);
  const transaction = client.transaction.bind(client);
  client.transaction = async (fn) => {
    const release = pool.transactionStarted();
    try {
      return await transaction((tx) => fn(wrapQuery(tx)));
    } finally {
      release();
    }
  };
  return client;
}
