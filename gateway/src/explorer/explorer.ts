import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type { Logger } from '@fed/platform';
import Negotiator from 'negotiator';
import { assetStore, isAssetName, type Assets } from './assets.ts';
import { ASSETS_PATH, GRAPHIQL_PATH, graphiqlCsp, graphiqlHtml } from './graphiql-page.ts';
import { sandboxLandingPageWithOfflineExplorer } from './landing-page.ts';

export { GRAPHIQL_PATH } from './graphiql-page.ts';

export interface ExplorerOptions {
  /** Development offers the explorers; production a static page of its own (no script, no version). */
  development: boolean;
  /** Where GraphQL is served (HTTP and websocket). */
  endpoint: string;
  /** Where a failure to read the bundled explorer's files is reported (clients only learn it is unavailable). */
  logger?: Logger;
}

export interface Explorer {
  /** The landing page plugin for Apollo Server. */
  plugin: ApolloServerPlugin;
  /** Serves the explorer's own routes; returns true when it answered. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
}

const FOREVER = 'public, max-age=31536000, immutable';

const error = (res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
};

/**
 * Production's landing page. Apollo's loads a floating `_latest` script from its CDN without integrity, sets
 * its CSP in a meta tag only, and names the server's version: this one is static, runs nothing, and its CSP
 * (an HTTP header) lets it load nothing either.
 */
const PRODUCTION_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>GraphQL API</title></head>
<body>
<h1>GraphQL API</h1>
<p>Send GraphQL queries and mutations here with <code>POST</code> and <code>content-type: application/json</code>.
Subscriptions use the graphql-ws protocol or server-sent events (graphql-sse, <code>accept: text/event-stream</code>)
on this same URL.</p>
</body>
</html>
`;
const PRODUCTION_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Apollo's rule for showing its landing page: a GET whose Accept prefers HTML to GraphQL's JSON types. */
const prefersHtml = (req: IncomingMessage) =>
  new Negotiator(req).mediaType(['application/json', 'application/graphql-response+json', 'multipart/mixed', 'text/html']) === 'text/html';

const send = (req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string | number>, body: Buffer | string) => {
  res.writeHead(status, { 'x-content-type-options': 'nosniff', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
};

/**
 * The landing page on the GraphQL endpoint, and in development the bundled GraphiQL on GRAPHIQL_PATH: built
 * from the graphiql, react, graphql-ws and graphql-sse npm packages and served by the gateway itself, so it
 * works with no internet at all. Production serves neither (its routes fall through to the 404 of the HTTP front).
 */
export function createExplorer({ development, endpoint, logger }: ExplorerOptions): Explorer {
  if (!development) {
    return {
      // Apollo's page is never rendered: the HTTP front answers browsers with the static page below first.
      plugin: ApolloServerPluginLandingPageDisabled(),
      handle(req, res, url) {
        if (url.pathname !== endpoint || (req.method !== 'GET' && req.method !== 'HEAD') || !prefersHtml(req)) return false;
        send(req, res, 200, {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': PRODUCTION_CSP,
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-cache',
        }, PRODUCTION_PAGE);
        return true;
      },
    };
  }

  const assets = assetStore();
  // The page depends only on the assets' versions: rendered once per load of them.
  const pages = new WeakMap<Assets, string>();
  const pageFor = (loaded: Assets) => {
    let page = pages.get(loaded);
    if (page === undefined) pages.set(loaded, (page = graphiqlHtml(loaded, endpoint)));
    return page;
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const { pathname } = url;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return error(res, 405, 'METHOD_NOT_ALLOWED', 'The explorer answers GET and HEAD only', { allow: 'GET, HEAD' });
    }
    const isPage = pathname === GRAPHIQL_PATH || pathname === `${GRAPHIQL_PATH}/`;
    const name = pathname.startsWith(ASSETS_PATH) ? pathname.slice(ASSETS_PATH.length) : undefined;
    // Only the fixed names: nothing a client sends becomes part of a file path.
    if (!isPage && !(name !== undefined && isAssetName(name))) return error(res, 404, 'NOT_FOUND', `Not found; the explorer is served at ${GRAPHIQL_PATH}`);

    let loaded: Assets;
    try {
      loaded = await assets();
    } catch (cause) {
      logger?.error({ err: cause }, 'The bundled GraphiQL could not be read from node_modules');
      return error(res, 500, 'INTERNAL_SERVER_ERROR', 'The bundled GraphiQL is not available on this server');
    }

    if (isPage) {
      return send(req, res, 200, {
        'content-type': 'text/html; charset=utf-8',
        // The page names the assets' current versions: it must be asked for again after an upgrade.
        'cache-control': 'no-cache',
        'content-security-policy': graphiqlCsp(req.headers.host),
        'referrer-policy': 'no-referrer',
      }, pageFor(loaded));
    }

    const asset = loaded[name as keyof Assets];
    const etag = `"${asset.version}"`;
    const headers: Record<string, string> = {
      'content-type': asset.type,
      etag,
      // Under its versioned URL a file never changes; under a bare one it may, after an upgrade.
      'cache-control': url.searchParams.get('v') === asset.version ? FOREVER : 'no-cache',
      vary: 'accept-encoding',
    };
    if (req.headers['if-none-match']?.split(/\s*,\s*/).includes(etag)) {
      res.writeHead(304, headers);
      return res.end();
    }
    if (new Negotiator(req).encoding(['gzip', 'identity']) === 'gzip') {
      return send(req, res, 200, { ...headers, 'content-encoding': 'gzip' }, asset.gzipped);
    }
    return send(req, res, 200, headers, asset.body);
  };

  return {
    plugin: sandboxLandingPageWithOfflineExplorer(GRAPHIQL_PATH),
    handle(req, res, url) {
      if (url.pathname !== GRAPHIQL_PATH && !url.pathname.startsWith(`${GRAPHIQL_PATH}/`)) return false;
      serve(req, res, url).catch((cause: unknown) => {
        logger?.error({ err: cause, path: url.pathname }, 'The explorer failed to answer');
        if (!res.headersSent) error(res, 500, 'INTERNAL_SERVER_ERROR', 'Internal server error');
        else res.destroy();
      });
      return true;
    },
  };
}
