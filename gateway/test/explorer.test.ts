import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runInNewContext } from 'node:vm';
import { createLogger, createMemoryCache, developmentSecret, listen, MemoryRateLimiter } from '@fed/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '../src/config.ts';
import { createAuthenticator, createGateway, type Gateway } from '../src/gateway.ts';
import { readSupergraph } from '../src/supergraph/load.ts';

// Nothing here reaches a subgraph, so their URLs point nowhere.
const NOWHERE = { users: 'http://127.0.0.1:9/graphql', orders: 'http://127.0.0.1:9/graphql' };

async function start(mode: 'development' | 'production'): Promise<{ gateway: Gateway; origin: string }> {
  const gateway = await createGateway({
    supergraphSdl: readSupergraph(DEFAULT_SUPERGRAPH_PATH),
    subgraphUrls: NOWHERE,
    logger: createLogger({ name: 'test', level: 'silent' }),
    cache: createMemoryCache(),
    rateLimiter: new MemoryRateLimiter(),
    authenticate: createAuthenticator(DEVELOPMENT_AUTH),
    subgraphSecrets: {},
    defaultSubgraphSecret: (name) => developmentSecret(name),
    mode,
  });
  await listen(gateway.httpServer, 0, '127.0.0.1');
  return { gateway, origin: `http://127.0.0.1:${(gateway.httpServer.address() as AddressInfo).port}` };
}

/** A request with the path sent byte for byte (fetch would resolve `..` before sending it). */
const rawGet = (origin: string, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const { hostname, port } = new URL(origin);
    const req = request({ hostname, port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

const landingPage = async (origin: string) => (await fetch(`${origin}/graphql`, { headers: { accept: 'text/html' } })).text();

describe('the bundled GraphiQL (development)', () => {
  let app: { gateway: Gateway; origin: string };
  let page: Response;
  let html: string;
  let assets: string[];

  beforeAll(async () => {
    app = await start('development');
    page = await fetch(`${app.origin}/graphiql`);
    html = await page.text();
    assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] ?? '').filter((url) => !url.startsWith('data:'));
  });
  afterAll(() => app?.gateway.stop());

  it('serves a page that loads only files from the gateway, under a same-origin-only CSP', () => {
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(assets.map((url) => url.replace(/\?v=[\w-]+$/, ''))).toEqual([
      '/graphiql/assets/graphiql.min.css',
      '/graphiql/assets/explorer.css',
      '/graphiql/assets/react.production.min.js',
      '/graphiql/assets/react-dom.production.min.js',
      '/graphiql/assets/graphql-ws.min.js',
      '/graphiql/assets/graphql-sse.min.js',
      '/graphiql/assets/graphiql.min.js',
      '/graphiql/assets/multipart.js',
      '/graphiql/assets/explorer.js',
    ]);
    expect(html).toContain('data-endpoint="/graphql"');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).not.toContain('unsafe');
    const host = new URL(app.origin).host;
    expect(csp).toContain(`connect-src 'self' ws://${host} wss://${host}`);
  });

  it('serves every asset with its content type, compressed, and cacheable for good under its versioned URL', async () => {
    for (const url of assets) {
      const response = await fetch(`${app.origin}${url}`);
      expect(response.status, url).toBe(200);
      expect(response.headers.get('content-type'), url).toBe(url.includes('.css?') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8');
      expect(response.headers.get('content-encoding'), url).toBe('gzip');
      expect(response.headers.get('cache-control'), url).toBe('public, max-age=31536000, immutable');
      const text = await response.text();
      expect(text.length, url).toBeGreaterThan(100);
      // Source maps are not served, so no file points at one (developer tools would report a 404 for each).
      expect(text, url).not.toMatch(/sourceMappingURL=\S+\.map/);
    }
    const graphiql = await fetch(`${app.origin}/graphiql/assets/graphiql.min.js`, { headers: { 'accept-encoding': 'identity' } });
    expect(graphiql.headers.get('content-encoding')).toBeNull();
    expect(await graphiql.text()).toContain('window.GraphiQL =');
  });

  it('revalidates an asset asked for without its version, and answers 304 when it has not changed', async () => {
    const bare = await fetch(`${app.origin}/graphiql/assets/explorer.js`);
    expect(bare.headers.get('cache-control')).toBe('no-cache');
    const etag = bare.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await fetch(`${app.origin}/graphiql/assets/explorer.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('answers only the fixed asset names: anything else, path tricks included, is a 404 that reveals nothing', async () => {
    const paths = [
      '/graphiql/assets/',
      '/graphiql/assets/unknown.js',
      '/graphiql/assets/graphiql.min.js.map',
      '/graphiql/assets/__proto__',
      '/graphiql/assets/constructor',
      '/graphiql/assets/..%2Fassets.ts',
      '/graphiql/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
      '/graphiql/assets/../explorer.ts',
      '/graphiql/assets/../../../package.json',
      '/graphiql/client/explorer.js',
      '/graphiql/anything',
    ];
    for (const path of paths) {
      const { status, body } = await rawGet(app.origin, path);
      expect(status, path).toBe(404);
      expect(body, path).not.toMatch(/node_modules|dependencies|import /);
    }
    const posted = await fetch(`${app.origin}/graphiql`, { method: 'POST' });
    expect(posted.status).toBe(405);
    expect(posted.headers.get('allow')).toBe('GET, HEAD');
  });

  it('keeps Apollo Sandbox on the landing page and adds a link to the bundled GraphiQL, with a redirect when Sandbox cannot load', async () => {
    const landing = await landingPage(app.origin);
    expect(landing).toContain('https://embeddable-sandbox.cdn.apollographql.com/');
    expect(landing).toContain('<a id="offline-explorer-link" href="/graphiql">');
    // Apollo's page allows inline script only with its nonce: the redirect must carry it to run at all.
    const nonce = /<script nonce="([^"]+)" src="https:\/\/embeddable-sandbox/.exec(landing)?.[1];
    expect(nonce).toBeTruthy();
    expect(landing).toContain(`<script nonce="${nonce}">\n  // The Sandbox script tag above blocks parsing`);
    expect(landing).toContain('window.location.replace("/graphiql")');
  });
});

describe("the bundled GraphiQL's multipart reader (client/multipart.js, as the browser runs it)", () => {
  type PartsOf = (response: Response, signal: AbortSignal) => AsyncGenerator<unknown>;
  const context: { TextDecoder: typeof TextDecoder; explorerMultipart?: { partsOf: PartsOf } } = { TextDecoder };
  runInNewContext(readFileSync(new URL('../src/explorer/client/multipart.js', import.meta.url), 'utf8'), context);
  const partsOf = context.explorerMultipart!.partsOf;

  const CONTENT_TYPE = 'multipart/mixed; boundary="-"; deferSpec=20220824';
  const part = (payload: unknown) => `\r\ncontent-type: application/json; charset=utf-8\r\n\r\n${JSON.stringify(payload)}\r\n---`;
  const PARTS = [{ data: { user: { name: 'Zoë 😀' } }, hasNext: true }, { incremental: [{ data: { orders: [1] }, path: ['user'], label: 'o' }], hasNext: true }, { hasNext: false }];
  // The gateway's framing (a line break before the first delimiter), and Apollo Server's (none, and an epilogue).
  const GATEWAY = `\r\n---${part(PARTS[0])}${part(PARTS[1])}${part(PARTS[2]).slice(0, -'\r\n---'.length)}\r\n-----\r\n`;
  const APOLLO = `${GATEWAY.slice(2)}epilogue`;

  const inChunksOf = (text: string, size: number) => {
    const bytes = new TextEncoder().encode(text);
    return new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += size) controller.enqueue(bytes.slice(at, at + size));
        controller.close();
      },
    });
  };
  const read = async (body: ReadableStream<Uint8Array>) => {
    const parts: unknown[] = [];
    for await (const payload of partsOf(new Response(body, { headers: { 'content-type': CONTENT_TYPE } }), new AbortController().signal)) parts.push(payload);
    return parts;
  };

  it('reads every part whatever the chunks: delimiters and multi-byte characters split anywhere', async () => {
    for (const text of [GATEWAY, APOLLO]) {
      for (let size = 1; size <= new TextEncoder().encode(text).length; size += 1) {
        expect(await read(inChunksOf(text, size)), `chunks of ${size} bytes`).toEqual(PARTS);
      }
    }
  });

  it('fails on an answer cut in the middle of a part, or a part that is not JSON', async () => {
    await expect(read(inChunksOf(GATEWAY.slice(0, GATEWAY.indexOf('incremental')), 7))).rejects.toThrow(/ended in the middle of a part/);
    await expect(read(inChunksOf(`\r\n---${part(PARTS[0]).replace('{', '<')}--\r\n`, 9))).rejects.toThrow(/not JSON/);
  });
});

describe('the bundled GraphiQL (production)', () => {
  let app: { gateway: Gateway; origin: string };
  beforeAll(async () => {
    app = await start('production');
  });
  afterAll(() => app?.gateway.stop());

  it('is not served, and the landing page does not mention it', async () => {
    for (const path of ['/graphiql', '/graphiql/', '/graphiql/assets/graphiql.min.js', '/graphiql/assets/explorer.js']) {
      expect((await fetch(`${app.origin}${path}`)).status, path).toBe(404);
    }
    expect(await landingPage(app.origin)).not.toContain('graphiql');
  });

  it('serves a static landing page: no script from a CDN (or at all), its CSP as an HTTP header, no server version', async () => {
    const response = await fetch(`${app.origin}/graphql`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
    const html = await response.text();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    expect(html).toContain('GraphQL API');
    expect(html).not.toMatch(/<script|https?:\/\/|cdn|_latest|http-equiv/i);
    // Apollo's page named its version (apollo-server-landing-page, 5.x); nothing here names any.
    expect(html).not.toMatch(/apollo|\d+\.\d+\.\d+/i);
    // GraphQL clients still get GraphQL.
    const api = await fetch(`${app.origin}/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { 'apollo-require-preflight': 'true' } });
    expect(await api.json()).toEqual({ data: { __typename: 'Query' } });
  });
});
