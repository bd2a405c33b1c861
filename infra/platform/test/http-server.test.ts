import { connect } from 'node:net';
import { createServer, request, type Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphqlRequestListener, HttpError, listen } from '../src/http/server.ts';

const MAX_BODY_BYTES = 2_048;

/** Stops a node:http server, dropping idle keep-alive sockets so close() does not wait for them. */
async function stopServer(server: Server): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}

/** A raw request with full control over headers and body framing (fetch always adds its own). */
function rawRequest(
  port: number,
  options: { method: string; path: string; headers?: Record<string, string | number>; body?: string; chunks?: string[] },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    // A fresh connection per request (agent: false), so one test's socket state cannot leak into the next.
    const target = { host: '127.0.0.1', port, method: options.method, path: options.path, headers: options.headers, agent: false };
    const req = request(target, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // Without content-length, node sends the chunks with transfer-encoding: chunked.
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end(options.body);
  });
}

describe('graphqlRequestListener on a real HTTP server', () => {
  let apollo: ApolloServer;
  let server: Server;
  let notReadyServer: Server;
  let base: string;
  let port: number;
  let notReadyBase: string;

  beforeAll(async () => {
    apollo = new ApolloServer({
      typeDefs: 'type Query { hello(name: String): String }',
      resolvers: { Query: { hello: (_: unknown, args: { name?: string | null }) => `hello ${args.name ?? 'world'}` } },
    });
    await apollo.start();
    server = createServer(
      graphqlRequestListener({
        apollo,
        context: async () => ({}),
        maxBodyBytes: MAX_BODY_BYTES,
        corsOrigins: ['https://app.example'],
      }),
    );
    port = await listen(server, 0, '127.0.0.1');
    base = `http://127.0.0.1:${port}`;

    notReadyServer = createServer(graphqlRequestListener({ apollo, context: async () => ({}), ready: () => ({ ready: false, status: 'starting' }) }));
    notReadyBase = `http://127.0.0.1:${await listen(notReadyServer, 0, '127.0.0.1')}`;
  });

  afterAll(async () => {
    await stopServer(server);
    await stopServer(notReadyServer);
    await apollo.stop();
  });

  const postJson = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('binds a free port when asked for port 0', () => {
    expect(port).toBeGreaterThan(0);
  });

  it('answers /healthz with 200', async () => {
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 200 when ready and 503 while the readiness probe says no', async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });

    const starting = await fetch(`${notReadyBase}/readyz`);
    expect(starting.status).toBe(503);
    expect(await starting.json()).toEqual({ status: 'starting' });
    // Liveness is separate from readiness.
    expect((await fetch(`${notReadyBase}/healthz`)).status).toBe(200);
  });

  it('answers an unknown path with a JSON 404', async () => {
    const response = await fetch(`${base}/graphq1`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/json');
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]?.extensions.code).toBe('NOT_FOUND');
    expect(body.errors[0]?.message).toContain('/graphql');
  });

  it('executes a normal POST query', async () => {
    const response = await postJson(JSON.stringify({ query: 'query Greet($name: String) { hello(name: $name) }', variables: { name: 'Ada' } }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toEqual({ data: { hello: 'hello Ada' } });
  });

  it('refuses a body larger than maxBodyBytes with 413 PAYLOAD_TOO_LARGE', async () => {
    const query = `{ hello(name: "${'x'.repeat(MAX_BODY_BYTES)}") }`;
    const response = await postJson(JSON.stringify({ query }));
    expect(response.status).toBe(413);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toEqual({
      errors: [{ message: `Request body exceeds ${MAX_BODY_BYTES} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }],
    });
  });

  it('refuses a streamed (chunked) body once it grows past maxBodyBytes, without a declared length', async () => {
    const chunk = 'x'.repeat(1_024);
    const response = await rawRequest(port, {
      method: 'POST',
      path: '/graphql',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: [`{"query":"{ hello(name: \\"`, ...Array.from({ length: 8 }, () => chunk), '\\") }"}'],
    });
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body)).toEqual({
      errors: [{ message: `Request body exceeds ${MAX_BODY_BYTES} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }],
    });
  });

  it('still serves requests after refusing an oversized one', async () => {
    const oversized = await postJson(JSON.stringify({ query: `{ hello(name: "${'y'.repeat(3 * MAX_BODY_BYTES)}") }` }));
    expect(oversized.status).toBe(413);
    const normal = await postJson(JSON.stringify({ query: '{ hello }' }));
    expect(await normal.json()).toEqual({ data: { hello: 'hello world' } });
  });

  it('accepts a body of exactly maxBodyBytes', async () => {
    const skeleton = JSON.stringify({ query: '{ hello(name: "") }' });
    const padding = MAX_BODY_BYTES - Buffer.byteLength(skeleton);
    const body = JSON.stringify({ query: `{ hello(name: "${'z'.repeat(padding)}") }` });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);
    const response = await postJson(body);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { hello: `hello ${'z'.repeat(padding)}` } });
  });

  it('answers a malformed request target with 400 BAD_REQUEST, not a 500', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write('GET http://a%20b/graphql HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n');
      });
      let received = '';
      socket.on('data', (chunk) => (received += chunk.toString()));
      socket.on('end', () => resolve(received));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('"code":"BAD_REQUEST"');
  });

  it('answers invalid JSON with 400 BAD_REQUEST', async () => {
    const response = await postJson('{"query": "{ hello }"');
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      errors: [{ message: 'Request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }],
    });
  });

  it('refuses a simple (CSRF-able) request without a JSON content type', async () => {
    const response = await rawRequest(port, {
      method: 'POST',
      path: '/graphql',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ query: '{ hello }' }),
    });
    expect(response.status).toBe(400);
    expect(response.body).not.toContain('hello world');
  });

  it('sends CORS headers to allowed origins only, and answers preflights with 204', async () => {
    const allowed = await postJson(JSON.stringify({ query: '{ hello }' }), { origin: 'https://app.example' });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('vary')).toContain('origin');

    const other = await postJson(JSON.stringify({ query: '{ hello }' }), { origin: 'https://evil.example' });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const preflight = await rawRequest(port, {
      method: 'OPTIONS',
      path: '/graphql',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(preflight.headers['access-control-allow-methods']).toContain('POST');
  });
});

describe('the admit step, before GraphQL', () => {
  let apollo: ApolloServer<{ who: string }>;
  let server: Server;
  let url: string;
  const seen: string[] = [];
  let resolved = 0;

  beforeAll(async () => {
    apollo = new ApolloServer<{ who: string }>({
      typeDefs: 'type Query { whoami: String }',
      resolvers: {
        Query: {
          whoami: (_: unknown, __: unknown, context: { who: string }) => {
            resolved++;
            return context.who;
          },
        },
      },
    });
    await apollo.start();
    server = createServer(
      graphqlRequestListener<{ who: string }, string>({
        apollo,
        admit: (req, body) => {
          seen.push(body);
          if (req.headers['x-refuse']) throw new HttpError(429, 'RATE_LIMITED', 'Slow down', { 'retry-after': '3' });
          return `admitted:${req.method}`;
        },
        context: async (_req, admission) => ({ who: admission }),
        corsOrigins: ['https://app.example'],
      }),
    );
    url = `http://127.0.0.1:${await listen(server, 0, '127.0.0.1')}/graphql`;
  });

  afterAll(async () => {
    await stopServer(server);
    await apollo.stop();
  });

  it('sees the raw body and hands what it returns to the context', async () => {
    const body = JSON.stringify({ query: '{ whoami }' });
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(await response.json()).toEqual({ data: { whoami: 'admitted:POST' } });
    expect(seen.at(-1)).toBe(body);
  });

  it('answers an HttpError with its status, code and headers, keeps CORS headers, and never runs GraphQL', async () => {
    const before = resolved;
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-refuse': '1', origin: 'https://app.example' },
      body: JSON.stringify({ query: '{ whoami }' }),
    });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('3');
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(await response.json()).toEqual({ errors: [{ message: 'Slow down', extensions: { code: 'RATE_LIMITED' } }] });
    expect(resolved).toBe(before);
  });
});
