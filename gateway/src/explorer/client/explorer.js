// The bundled GraphiQL's own script: runs in the browser as is (no build step), after the React, ReactDOM,
// graphql-ws and GraphiQL UMD bundles have set their globals.
/* global document, location, React, ReactDOM, GraphiQL, graphqlWs */
'use strict';

(function () {
  const endpoint = document.currentScript?.dataset.endpoint || '/graphql';
  const { getOperationAST, parse } = GraphiQL.GraphQL;

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

  async function overHttp(params, headers) {
    const response = await fetch(httpUrl, {
      method: 'POST',
      // content-type last: the gateway's CSRF protection refuses anything else, whatever the editor says.
      headers: { accept: 'application/graphql-response+json, application/json;q=0.9', ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(params),
    });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return { errors: [{ message: `HTTP ${response.status} ${response.statusText}: the response is not JSON` }] };
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

  function fetcher(params, options) {
    const headers = headersFrom(options?.headers);
    return isSubscription(params) ? overWebSocket(params, headers) : overHttp(params, headers);
  }

  const defaultQuery = `# The bundled GraphiQL: served by the gateway itself, so it works offline.
#
# To sign in, put this in the Headers tab below:
#   { "Authorization": "Bearer <token>" }
# with a token from:  npm run -s token -- --sub 1 --role admin
# Subscriptions run over the websocket endpoint (${wsUrl.href}) with the same headers.

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
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      defaultEditorToolsVisibility: 'headers',
      // Tokens stay out of localStorage.
      shouldPersistHeaders: false,
    }),
  );
})();
