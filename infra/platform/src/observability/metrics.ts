import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';

export interface MetricsOptions {
  /** Added to every series as the `service` label. */
  service: string;
  /** CPU, memory, event-loop lag, GC: once per process, so only its composition root turns them on. */
  processMetrics?: boolean;
  /**
   * Operation names that may become a label value. Any other name is reported as `other`, so a client
   * inventing names cannot grow the series without bound.
   */
  knownOperations?: Iterable<string>;
}

interface MetricConfig<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/** Latency buckets (seconds) for requests and fetches: 5 ms to 10 s. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const OTHER_OPERATION = 'other';
export const ANONYMOUS_OPERATION = 'anonymous';

// The gateway names the operations it sends a subgraph `<client's name>__<subgraph>__<n>`.
const GATEWAY_SUFFIX = /__[A-Za-z_][\w-]*__\d+$/;

/**
 * One service's Prometheus registry and the instruments every concern registers in it (`http_`, `graphql_`,
 * `subgraph_`, `cache_`, `db_`, `ws_`, `events_`). Each service has its own, even when several share a process.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly service: string;
  private readonly known: Set<string>;

  constructor({ service, processMetrics = false, knownOperations = [] }: MetricsOptions) {
    this.service = service;
    this.known = new Set(knownOperations);
    this.registry.setDefaultLabels({ service });
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  // Get-or-create: a factory that runs twice on one registry (a restarted subgraph) reuses its instruments.
  private existing<T extends Metric>(name: string, make: () => T): T {
    return (this.registry.getSingleMetric(name) as T | undefined) ?? make();
  }

  counter<L extends string = never>(config: MetricConfig<L>): Counter<L> {
    return this.existing(config.name, () => new Counter<L>({ ...config, labelNames: config.labelNames ?? [], registers: [this.registry] }));
  }

  /**
   * A counter read at scrape time from a running total some component keeps anyway (cache stats, a
   * socket count): nothing is added to its hot path.
   */
  counterFrom<L extends string = never>(config: MetricConfig<L>, read: () => Iterable<[Partial<Record<L, string>>, number]>): Counter<L> {
    return this.existing(config.name, () => {
      const counter: Counter<L> = new Counter<L>({
        ...config,
        labelNames: config.labelNames ?? [],
        registers: [this.registry],
        collect: () => {
          counter.reset();
          for (const [labels, value] of read()) counter.inc(labels, value);
        },
      });
      return counter;
    });
  }

  /** A gauge; `collect` (when given) sets it from live state at scrape time. */
  gauge<L extends string = never>(config: MetricConfig<L> & { collect?: (gauge: Gauge<L>) => void }): Gauge<L> {
    const { collect, ...rest } = config;
    return this.existing(rest.name, () => {
      const gauge: Gauge<L> = new Gauge<L>({
        ...rest,
        labelNames: rest.labelNames ?? [],
        registers: [this.registry],
        ...(collect ? { collect: () => collect(gauge) } : {}),
      });
      return gauge;
    });
  }

  histogram<L extends string = never>(config: MetricConfig<L> & { buckets?: number[] }): Histogram<L> {
    return this.existing(config.name, () =>
      new Histogram<L>({ ...config, labelNames: config.labelNames ?? [], buckets: config.buckets ?? DURATION_BUCKETS, registers: [this.registry] }),
    );
  }

  /** The label value for an operation name: itself when known, else a fixed value. */
  operationLabel(name: string | null | undefined): string {
    if (!name) return ANONYMOUS_OPERATION;
    if (this.known.has(name)) return name;
    const clientName = name.replace(GATEWAY_SUFFIX, '');
    return this.known.has(clientName) ? clientName : OTHER_OPERATION;
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * The text exposition of several services' registries as one page: series of the same name merge into one
 * family, told apart by their `service` label (the embedded default serves all three at the gateway).
 */
export async function renderMetrics(sources: readonly Metrics[]): Promise<string> {
  if (sources.length === 1 && sources[0]) return sources[0].registry.metrics();
  const snapshots = await Promise.all(sources.map((source) => source.registry.getMetricsAsJSON()));
  // No two registries share a series (each has its own `service` label), so merging only has to put families
  // together: 'sum' keeps every series as it is. A metric's own aggregator is meant for cluster workers of one
  // service and would drop or blend series: process_start_time_seconds ('omit') would vanish.
  return AggregatorRegistry.aggregate(snapshots.map((metrics) => metrics.map((metric) => ({ ...metric, aggregator: 'sum' as const })))).metrics();
}
