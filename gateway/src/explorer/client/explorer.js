// The bundled GraphiQL's own script: runs in the browser as is (no build step), after the React, ReactDOM,
// graphql-ws, graphql-sse and GraphiQL UMD bundles and our multipart.js have set their globals.
/* global document, location, React, ReactDOM, GraphiQL, graphqlWs, graphqlSse, explorerMultipart */
'use strict';

(function () {
  const endpoint = document.currentScript?.dataset.endpoint || '/graphql';
  const { getOperationAST, parse } = GraphiQL.GraphQL;
  const h = React.createElement;

  const httpUrl = new URL(endpoint, location.href);
  const wsUrl = new URL(endpoint, location.href);
  wsUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';

  // The headers editor holds any JSON object; HTTP headers and connection params want strings.
  const headersFrom = (edited) =>
    Object.fromEntries(
      Object.entries(edited ?? {})
        .filter(([, value]) => value !== undefined && value !== null)
        .map(([name, value]) => [name, String(value)]),
    );

  // GraphiQL's own documentAST lags the editor by a debounce: the query about to be sent is the one to read.
  const isSubscription = (params) => {
    let ast;
    try {
      ast = parse(params.query);
    } catch {
      // The server explains a syntax error better than we could.
      return false;
    }
    return getOperationAST(ast, params.operationName ?? undefined)?.operation === 'subscription';
  };

  // Queries and mutations go over HTTP. A client that names the @defer spec of 2022-08-24 (Apollo Client's)
  // gets a deferred query as multipart/mixed parts; every other answer stays one JSON document.
  const HTTP_ACCEPT = 'multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json;q=0.9';

  const notJson = (response) => ({ errors: [{ message: `HTTP ${response.status} ${response.statusText}: the response is not JSON` }] });

  /**
   * A single answer (a promise of one result), or a deferred one: an async iterable of its parts, each
   * `{ data, hasNext }` then `{ incremental, hasNext }`, which GraphiQL merges and shows as they come.
   */
  async function overHttp(params, headers) {
    const controller = new AbortController();
    const response = await fetch(httpUrl, {
      method: 'POST',
      // content-type last: the gateway's CSRF protection refuses anything else, whatever the editor says.
      headers: { accept: HTTP_ACCEPT, ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(params),
      signal: controller.signal,
    });
    if ((response.headers.get('content-type') ?? '').startsWith('multipart/mixed') && response.body) {
      const parts = explorerMultipart.partsOf(response, controller.signal);
      return {
        [Symbol.asyncIterator]() {
          return this;
        },
        next: () => parts.next(),
        // GraphiQL's stop button: the request is cut at once, not after the next part.
        return: () => {
          controller.abort();
          return parts.return();
        },
      };
    }
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return notJson(response);
    }
  }

  // One socket per set of headers: the token is sent once, in connection_init, so other headers need another
  // socket. Idle sockets close by themselves (lazy clients), so keeping the clients costs nothing.
  const clients = new Map();
  const clientFor = (headers) => {
    const key = JSON.stringify(headers);
    let client = clients.get(key);
    if (!client) {
      // No retries: a refused token (4403) or an expired one (4401) would only be refused again; the error is
      // shown at once and running the subscription again reconnects.
      client = graphqlWs.createClient({ url: wsUrl.href, connectionParams: headers, retryAttempts: 0 });
      clients.set(key, client);
    }
    return client;
  };

  // graphql-ws reports a closed socket as a CloseEvent, which GraphiQL would print as "{}".
  const readable = (error) => {
    if (Array.isArray(error) || error instanceof Error) return error;
    if (error && typeof error.code === 'number') {
      return new Error(`The websocket closed with ${error.code}${error.reason ? `: ${error.reason}` : ''}`);
    }
    return new Error(`The websocket to ${wsUrl.href} failed`);
  };

  function overWebSocket(params, headers) {
    const client = clientFor(headers);
    // An observable: GraphiQL's stop button calls unsubscribe, which completes the subscription on the server.
    return {
      subscribe(observer) {
        const unsubscribe = client.subscribe(params, {
          next: (result) => observer.next(result),
          error: (error) => observer.error(readable(error)),
          complete: () => observer.complete(),
        });
        return { unsubscribe };
      },
    };
  }

  // Subscriptions over server-sent events: graphql-sse's distinct-connections mode, one POST per subscription
  // with `accept: text/event-stream`, to the same URL as queries. The client sets accept and content-type.
  const sseHeaders = (headers) => Object.fromEntries(Object.entries(headers).filter(([name]) => !/^(accept|content-type)$/i.test(name)));

  // A refused stream (a bad token, a limit) answers with a status and GraphQL errors: those are shown as they
  // would be over HTTP, rather than graphql-sse's bare "Server responded with 401". The client aborts the
  // request before it reports the error, which would cut the body: it is read first, into a copy.
  async function keepingRefusals(url, init) {
    const response = await fetch(url, init);
    if (response.ok) return response;
    const text = await response.text();
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  async function refusalOf(error) {
    const response = error?.response;
    if (!response || typeof response.text !== 'function') return undefined;
    try {
      const body = JSON.parse(await response.text());
      return body && Array.isArray(body.errors) ? body : undefined;
    } catch {
      return undefined;
    }
  }

  function overEventStream(params, headers) {
    return {
      subscribe(observer) {
        // No retries, as on the websocket: the error is shown at once and running the subscription again
        // opens a new stream.
        const client = graphqlSse.createClient({
          url: httpUrl.href,
          headers: sseHeaders(headers),
          retryAttempts: 0,
          fetchFn: keepingRefusals,
        });
        const stop = client.subscribe(params, {
          next: (result) => observer.next(result),
          error: (error) => {
            client.dispose();
            void refusalOf(error).then((refusal) => {
              if (!refusal) return observer.error(error instanceof Error ? error : new Error(`The event stream from ${httpUrl.href} failed`));
              observer.next(refusal);
              observer.complete();
            });
          },
          complete: () => {
            client.dispose();
            observer.complete();
          },
        });
        return {
          unsubscribe() {
            stop();
            client.dispose();
          },
        };
      },
    };
  }

  // How subscriptions travel, chosen above the editor and remembered in this browser.
  const TRANSPORTS = {
    ws: `WebSocket (graphql-ws)`,
    sse: `Server-sent events (graphql-sse)`,
  };
  const TRANSPORT_KEY = 'explorer:subscription-transport';
  const remembered = () => {
    try {
      return localStorage.getItem(TRANSPORT_KEY);
    } catch {
      return null;
    }
  };
  const saved = remembered();
  let transport = saved !== null && Object.hasOwn(TRANSPORTS, saved) ? saved : 'ws';

  function TransportChoice() {
    const [chosen, choose] = React.useState(transport);
    const onChange = (event) => {
      transport = event.target.value;
      try {
        localStorage.setItem(TRANSPORT_KEY, transport);
      } catch {
        // Storage refused (private mode): the choice lasts as long as the page.
      }
      choose(transport);
    };
    return h(
      'label',
      { className: 'explorer-transport', title: 'Queries and mutations always go over HTTP (with @defer as multipart parts)' },
      'Subscriptions over ',
      h(
        'select',
        { id: 'explorer-subscription-transport', value: chosen, onChange },
        Object.entries(TRANSPORTS).map(([value, label]) => h('option', { key: value, value }, label)),
      ),
    );
  }

  function fetcher(params, options) {
    const headers = headersFrom(options?.headers);
    if (!isSubscription(params)) return overHttp(params, headers);
    return transport === 'sse' ? overEventStream(params, headers) : overWebSocket(params, headers);
  }

  const defaultQuery = `# The bundled GraphiQL: served by the gateway itself, so it works offline.
#
# To sign in, put this in the Headers tab below:
#   { "Authorization": "Bearer <token>" }
# with a token from:  npm run -s token -- --sub 1 --role admin
# Subscriptions run with the same headers over the websocket endpoint (${wsUrl.href}) or as
# server-sent events (POST ${httpUrl.href}, accept: text/event-stream): choose with "Subscriptions over"
# at the top right. Fields under @defer arrive after the rest, e.g.  ... @defer { orders(first: 2) { totalCount } }

{
  users(first: 3) {
    totalCount
    edges {
      node {
        id
        name
        orders(first: 2) {
          edges { node { id status totalCents items { sku quantity unitPriceCents } } }
        }
      }
    }
  }
}
`;

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    h(
      GraphiQL,
      {
        fetcher,
        defaultQuery,
        defaultEditorToolsVisibility: 'headers',
        // Tokens stay out of localStorage.
        shouldPersistHeaders: false,
      },
      // In the logo's place at the top right: always in view.
      h(GraphiQL.Logo, null, h(TransportChoice)),
    ),
  );
})();
