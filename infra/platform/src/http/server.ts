import type { IncomingMessage, RequestListener, Server, ServerOptions, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderMap, type ApolloServer, type BaseContext, type HTTPGraphQLResponse } from '@apollo/server';
import type { Logger } from '../logger.ts';
import { METRICS_CONTENT_TYPE, renderMetrics, type Metrics } from '../observability/metrics.ts';
import { acceptRequestId, isProbeRequest, REQUEST_ID_HEADER, withRequestScope, type RequestScope } from '../observability/request-scope.ts';
import type { Telemetry } from '../observability/telemetry.ts';
import { withServerSpan } from '../observability/tracing.ts';

/** An answer already serialised (a cache hit): its bytes are written as they are. */
export interface RawHttpResponse {
  status: number;
  headers: HeaderMap;
  bytes: Uint8Array;
}

/** A GraphQL request as it reached HTTP, with what `admit` made of it. */
export interface GraphQLExchange<TAdmission> {
  method: string;
  headers: HeaderMap;
  /** The query string, `?` included (GET requests carry the operation there). */
  search: string;
  /** The parsed JSON body of a POST; undefined for GET. */
  body: unknown;
  admission: TAdmission;
  /** The request's id, operation name and error codes, for its log lines and access line. */
  scope?: RequestScope;
}

export interface GraphQLHttpOptions<TContext extends BaseContext, TAdmission = undefined> {
  apollo: ApolloServer<TContext>;
  /**
   * Runs before GraphQL parses anything (authentication, rate limits), with the raw body ('' for GET). Throw
   * an HttpError to refuse the request; what it returns is handed to `context`. `scope` names the request in
   * log lines.
   */
  admit?: (req: IncomingMessage, body: string, scope: RequestScope) => Promise<TAdmission> | TAdmission;
  /**
   * The first look at the parsed request (a POST's JSON body, a GET's query string), before `around` and
   * GraphQL: throw an HttpError to refuse it, or return it, rewritten if need be (variables it does not need).
   */
  inspect?: (request: { method: string; search: string; body: unknown }) => { search: string; body: unknown };
  /**
   * Wraps GraphQL execution: it may answer without running it (a cache hit), or work on what it returns
   * before it is sent. It may also add to the admission, before `execute` builds the context from it.
   */
  around?: (exchange: GraphQLExchange<TAdmission>, execute: () => Promise<HTTPGraphQLResponse>) => Promise<HTTPGraphQLResponse | RawHttpResponse>;
  /**
   * Builds per-request state (DataLoaders, the viewer) from the incoming request and its admission. The
   * request's scope is added to it (see requestScopeOf).
   */
  context: (req: IncomingMessage, admission: TAdmission) => Promise<TContext>;
  path?: string;
  /** Request bodies above this are refused with 413 before they are parsed. */
  maxBodyBytes?: number;
  /** Browser origins allowed to call the endpoint; empty means no CORS headers at all. */
  corsOrigins?: string[] | '*';
  /** What /readyz answers: 503 unless ready (a schema loaded, the database answering, not draining). */
  ready?: () => Readiness | Promise<Readiness>;
  /**
   * Keep a caller's `probe:` request id (another service's health probe, logged at debug): only where every
   * caller is one of ours, as behind the gateway. Elsewhere it is replaced, or any client could take its
   * requests out of the info-level access log.
   */
  trustProbeIds?: boolean;
  /** True once a drain started: responses then carry `connection: close`, so clients stop reusing the socket. */
  draining?: () => boolean;
  /** Records http_ metrics and, when tracing is on, a server span per request continuing the caller's trace. */
  telemetry?: Telemetry;
  /** What GET /metrics serves: this service's registry, or every service's in the embedded default. */
  metrics?: () => readonly Metrics[];
  /**
   * Other routes on the same port (the explorer's assets, /metrics), tried before GraphQL's path: returns
   * true when it answered the request.
   */
  routes?: (req: IncomingMessage, res: ServerResponse, url: URL, scope: RequestScope) => boolean | Promise<boolean>;
  /** Where failures outside GraphQL (a broken socket, a bug here) are reported. */
  logger?: Logger;
}

/** A readiness answer; `checks` says what is not ready (never a URL or an error message). */
export interface Readiness {
  ready: boolean;
  status: 'ready' | 'starting' | 'draining' | 'unavailable';
  checks?: Record<string, boolean>;
  /** What this replica runs (a schema's hash, say), for telling replicas apart during a roll-out. */
  info?: Record<string, string>;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
};

// The stable code of a refusal this front answered itself, for the access log.
const REFUSAL = Symbol('refusal');
type Refusable = ServerResponse & { [REFUSAL]?: string };

const httpError = (res: Refusable, status: number, code: string, message: string, headers: Record<string, string> = {}) => {
  res[REFUSAL] = code;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  json(res, status, { errors: [{ message, extensions: { code } }] });
};

/** A refusal before GraphQL runs: an HTTP status, a stable code, a message safe for clients, extra headers. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A request body past its limit: the rest is still on the socket, so the connection should close after the answer. */
export class BodyTooLarge extends Error {}

/** The whole body of a request as UTF-8, refused with BodyTooLarge past `limit` bytes (declared or sent). */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** CORS headers for an allowed origin (routes that answer themselves, such as event streams, apply them too). */
export function applyCors(req: IncomingMessage, res: ServerResponse, origins: string[] | '*' | undefined): void {
  const origin = req.headers.origin;
  if (!origins || !origin) return;
  if (origins !== '*' && !origins.includes(origin)) return;
  res.setHeader('access-control-allow-origin', origins === '*' ? '*' : origin);
  res.setHeader('vary', 'origin');
  res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
  res.setHeader(
    'access-control-allow-headers',
    'content-type, authorization, apollo-require-preflight, x-apollo-operation-name, x-request-id, idempotency-key, last-event-id',
  );
  res.setHeader('access-control-max-age', '600');
}

/**
 * A plain node:http front for Apollo Server: health probes, a bounded JSON body, CORS, and streaming of
 * incremental responses. Attach it with `server.on('request', ...)`; the composition root (or a test) listens.
 */
export function graphqlRequestListener<TContext extends BaseContext, TAdmission = undefined>(
  options: GraphQLHttpOptions<TContext, TAdmission>,
): RequestListener {
  const { apollo, admit, inspect, around, context, path = '/graphql', maxBodyBytes = 1024 * 1024, corsOrigins, ready, routes, telemetry, metrics, draining, trustProbeIds = false, logger } = options;
  const durations = telemetry?.metrics.histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests from the first byte to the last, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
  });
  const inFlight = telemetry?.metrics.gauge({ name: 'http_requests_in_flight', help: 'HTTP requests being served now' });
  const PROBES = new Set(['/healthz', '/readyz', '/metrics']);
  const isProbe = (pathname: string, scope: RequestScope) => PROBES.has(pathname) || isProbeRequest(scope.requestId);
  // Label values come from a fixed set: a client making up paths or methods cannot grow the series.
  const routeLabel = (pathname: string) => (pathname === path || PROBES.has(pathname) ? pathname : 'other');
  const methodLabel = (method: string | undefined) => (method && ['GET', 'POST', 'OPTIONS', 'HEAD'].includes(method) ? method : 'other');

  const handle = async (req: IncomingMessage, res: ServerResponse, scope: RequestScope) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return httpError(res, 400, 'BAD_REQUEST', 'Malformed request target');
    }
    if (url.pathname === '/healthz') return json(res, 200, { status: 'ok' });
    if (url.pathname === '/readyz') {
      const { ready: isReady, status, checks, info } = (await ready?.()) ?? { ready: true, status: 'ready' };
      return json(res, isReady ? 200 : 503, { status, checks, ...info });
    }
    if (url.pathname === '/metrics' && metrics) {
      const page = await renderMetrics(metrics());
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
      return res.end(page);
    }
    if (routes && (await routes(req, res, url, scope))) return;
    if (url.pathname !== path) return httpError(res, 404, 'NOT_FOUND', `Not found; GraphQL is served at ${path}`);

    applyCors(req, res, corsOrigins);
    // A preflight is only answered where browsers may call; elsewhere it is refused like any other request.
    if (req.method === 'OPTIONS' && corsOrigins) {
      res.writeHead(204);
      return res.end();
    }

    let body: unknown;
    let raw = '';
    if (req.method === 'POST') {
      try {
        raw = await readBody(req, maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLarge) {
          // The rest of the body is still on the socket; close it rather than read it or let a keep-alive
          // client send its next request into it.
          res.setHeader('connection', 'close');
          httpError(res, 413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${maxBodyBytes} bytes`);
          res.once('finish', () => req.destroy());
          return;
        }
        // The client went away mid-body, or the server's request timeout answered 408 and closed the socket:
        // there is no one left to answer, and nothing went wrong here.
        if (req.destroyed || res.destroyed) return;
        throw error;
      }
    }

    let admission: TAdmission;
    try {
      admission = admit ? await admit(req, raw, scope) : (undefined as TAdmission);
    } catch (error) {
      if (error instanceof HttpError) return httpError(res, error.status, error.code, error.message, error.headers);
      throw error;
    }

    if (req.method === 'POST') {
      const contentType = req.headers['content-type'] ?? '';
      if (contentType.includes('json') && raw.length > 0) {
        try {
          body = JSON.parse(raw);
        } catch {
          return httpError(res, 400, 'BAD_REQUEST', 'Request body is not valid JSON');
        }
        const claimed = (body as { operationName?: unknown } | null)?.operationName;
        if (typeof claimed === 'string') scope.operationName = claimed.slice(0, 100);
      } else {
        body = raw;
      }
    }

    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }

    const method = (req.method ?? 'GET').toUpperCase();
    let search = url.search;
    if (inspect) {
      try {
        ({ search, body } = inspect({ method, search, body }));
      } catch (error) {
        if (error instanceof HttpError) return httpError(res, error.status, error.code, error.message, error.headers);
        throw error;
      }
    }
    const execute = () =>
      apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: { method, headers, search, body },
        context: async () => withRequestScope(await context(req, admission), scope),
      });
    const result = around ? await around({ method, headers, search, body, admission, scope }, execute) : await execute();

    for (const [key, value] of result.headers) res.setHeader(key, value);
    res.statusCode = result.status ?? 200;
    if ('bytes' in result) return res.end(result.bytes);
    if (result.body.kind === 'complete') return res.end(result.body.string);
    for await (const chunk of result.body.asyncIterator) res.write(chunk);
    res.end();
  };

  const serve = (req: IncomingMessage, res: ServerResponse, scope: RequestScope) =>
    handle(req, res, scope).catch((error: unknown) => {
      // Apollo turns every GraphQL failure into a response; reaching here means the socket or this code failed.
      logger?.error({ requestId: scope.requestId, err: error, method: req.method }, 'HTTP request failed outside GraphQL');
      if (!res.headersSent) httpError(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error');
      else res.destroy();
    });

  return (req, res) => {
    const started = performance.now();
    const scope: RequestScope = { requestId: acceptRequestId(req.headers[REQUEST_ID_HEADER], { probes: trustProbeIds }), errorCodes: new Set() };
    res.setHeader(REQUEST_ID_HEADER, scope.requestId);
    if (draining?.()) res.setHeader('connection', 'close');
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const route = routeLabel(pathname);
    inFlight?.inc();
    // Nothing sent means no status: the client left, or the drain cut the connection.
    const status = () => (res.headersSent ? res.statusCode : 'aborted');
    res.once('close', () => {
      inFlight?.dec();
      const seconds = (performance.now() - started) / 1000;
      durations?.observe({ method: methodLabel(req.method), route, status: String(status()) }, seconds);
      const refusal = (res as Refusable)[REFUSAL];
      if (refusal) scope.errorCodes.add(refusal);
      // One line per request. Probes would drown the log at info.
      logger?.[isProbe(pathname, scope) ? 'debug' : 'info'](
        {
          requestId: scope.requestId,
          method: req.method,
          path: pathname.slice(0, 200),
          status: status(),
          durationMs: Math.round(seconds * 10_000) / 10,
          operationName: scope.operationName,
          errorCodes: scope.errorCodes.size > 0 ? [...scope.errorCodes] : undefined,
          // The client went away before the whole response was written.
          aborted: res.writableFinished ? undefined : true,
        },
        'request',
      );
    });
    if (!telemetry?.tracer) return void serve(req, res, scope);
    withServerSpan(telemetry.tracer, `${methodLabel(req.method)} ${route}`, req.headers, (span) => {
      span.setAttributes({ 'http.request.method': req.method ?? '', 'url.path': pathname.slice(0, 200), 'http.route': route });
      res.once('close', () => {
        if (res.headersSent) span.setAttribute('http.response.status_code', res.statusCode);
        if (!res.headersSent || res.statusCode >= 500) span.setStatus({ code: 2 });
        span.end();
      });
      void serve(req, res, scope);
    });
  };
}

/** How long a client may take to send a request: its headers, and the whole of it (body included). */
export interface HttpTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Node's own defaults are 60 s and 300 s: long enough for a client to hold a socket and a buffer with a trickle. */
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 };

/**
 * node:http server options enforcing the timeouts: past either, Node answers 408 and closes the socket. Node
 * checks them every `connectionsCheckingInterval` (30 s by default, which would stretch a short timeout), so
 * the check runs a few times per timeout, at most once every second.
 */
export function httpServerOptions(timeouts: Partial<HttpTimeouts> = {}): ServerOptions {
  const { headersTimeoutMs, requestTimeoutMs } = { ...DEFAULT_HTTP_TIMEOUTS, ...timeouts };
  // Node refuses a headers timeout longer than the request's.
  const headersTimeout = Math.min(headersTimeoutMs, requestTimeoutMs);
  return {
    headersTimeout,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 4))),
  };
}

export class PortInUseError extends Error {}

/** Listens and resolves with the bound port (port 0 picks a free one, which tests rely on). */
export async function listen(server: Server, port: number, host?: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(`Port ${port} is already in use (another npm start?)`) : error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
