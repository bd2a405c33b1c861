import { Metrics, type MetricsOptions } from './metrics.ts';
import { createTracing, otlpExporter, type SpanExporter, type Tracer } from './tracing.ts';

/** What a service records about itself: its metrics registry, and a tracer when tracing is on. */
export interface Telemetry {
  metrics: Metrics;
  tracer?: Tracer;
}

export const createTelemetry = (options: MetricsOptions & { tracer?: Tracer }): Telemetry => ({
  metrics: new Metrics(options),
  tracer: options.tracer,
});

export interface ServiceTelemetry {
  telemetry: Telemetry;
  /** Exports buffered spans; call last on shutdown. */
  shutdown(): Promise<void>;
}

/**
 * A composition root's telemetry for one service: its registry (with the process's own metrics when it owns
 * the process), and a tracer exporting to `exporter` (OTLP from config) when tracing is on.
 */
export function startTelemetry(
  service: string,
  settings: {
    /** Null: tracing off. An exporter of the caller's (tests), else OTLP to `endpoint`. */
    tracing: { endpoint?: string; exporter?: SpanExporter; sampleRatio?: number; batch?: boolean } | null;
    knownOperations?: readonly string[];
  },
  { processMetrics = false, global = false }: { processMetrics?: boolean; global?: boolean } = {},
): ServiceTelemetry {
  const options = settings.tracing;
  const tracing =
    options &&
    createTracing({
      serviceName: service,
      exporter: options.exporter ?? otlpExporter(options.endpoint ?? 'http://localhost:4318'),
      sampleRatio: options.sampleRatio,
      batch: options.batch,
      global,
    });
  return {
    telemetry: createTelemetry({ service, processMetrics, knownOperations: settings.knownOperations, tracer: tracing?.tracer }),
    shutdown: async () => tracing?.shutdown(),
  };
}
