import { context, propagation, SpanKind, trace, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-node';

export type { Span, Tracer };
export { InMemorySpanExporter, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-node';

export interface TracingOptions {
  /** The `service.name` of every span this provider records. */
  serviceName: string;
  exporter: SpanExporter;
  /** Batch spans before export (OTLP); a test exporter wants each span at once. */
  batch?: boolean;
  /** Share of new traces recorded (0–1); a caller's sampled flag is followed either way. */
  sampleRatio?: number;
  /**
   * Install as the process's provider, context manager and W3C propagator. Exactly one service per
   * process does: @apollo/gateway records its plan and fetch spans on the global provider.
   */
  global?: boolean;
}

export interface Tracing {
  tracer: Tracer;
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

/** An OTLP/HTTP exporter sending to `<endpoint>/v1/traces` (a collector, Jaeger, Tempo...). */
export const otlpExporter = (endpoint: string) => new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` });

/** One service's tracer provider. Tracing is off unless a composition root creates one. */
export function createTracing({ serviceName, exporter, batch = true, sampleRatio = 1, global = false }: TracingOptions): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(sampleRatio) }),
    spanProcessors: [batch ? new BatchSpanProcessor(exporter) : new SimpleSpanProcessor(exporter)],
  });
  if (global) provider.register();
  return {
    tracer: provider.getTracer(serviceName),
    shutdown: async () => {
      await provider.shutdown();
      // A test process starts the next stack with a fresh provider.
      if (global) {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

/** Adds the active trace (W3C `traceparent`) to outgoing headers; nothing when tracing is off. */
export const injectTraceContext = (headers: Record<string, string>): void => propagation.inject(context.active(), headers);

/** Runs `fn` as a server span continuing the caller's trace from `headers`. */
export function withServerSpan<T>(tracer: Tracer, name: string, headers: Record<string, string | string[] | undefined>, fn: (span: Span) => T): T {
  const parent = propagation.extract(context.active(), headers);
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER }, parent, fn);
}
