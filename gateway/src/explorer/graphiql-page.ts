import { ASSET_SOURCES, type AssetName, type Assets } from './assets.ts';

/** Where the bundled GraphiQL is served, and its assets under it. */
export const GRAPHIQL_PATH = '/graphiql';
export const ASSETS_PATH = `${GRAPHIQL_PATH}/assets/`;

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (character) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[character] ?? character);

// The version makes each URL name one exact content, so browsers may keep it without asking again.
const assetUrl = (assets: Assets, name: AssetName) => `${ASSETS_PATH}${name}?v=${assets[name].version}`;

/** The page: only same-origin files, no inline script or style, so the CSP below can forbid both. */
export function graphiqlHtml(assets: Assets, endpoint: string): string {
  const names = Object.keys(ASSET_SOURCES) as AssetName[];
  const styles = names.filter((name) => name.endsWith('.css')).map((name) => `    <link rel="stylesheet" href="${escapeHtml(assetUrl(assets, name))}" />`);
  const scripts = names
    .filter((name) => name.endsWith('.js'))
    .map((name) => {
      // Our script learns the endpoint from its own tag: an inline script would need 'unsafe-inline'.
      const data = name === 'explorer.js' ? ` data-endpoint="${escapeHtml(endpoint)}"` : '';
      return `    <script src="${escapeHtml(assetUrl(assets, name))}"${data}></script>`;
    });
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>GraphiQL · federated graph</title>
    <link rel="icon" href="data:," />
${styles.join('\n')}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
${scripts.join('\n')}
  </body>
</html>
`;
}

// A Host header is the client's own claim: it is echoed into the policy only when it is a plain host[:port].
const PLAIN_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Everything from this origin only. The fonts are data: URLs inside GraphiQL's CSS. Websockets are named
 * explicitly because not every browser counts ws(s): to the same host as 'self'.
 */
export function graphiqlCsp(host: string | undefined): string {
  const sockets = host && PLAIN_HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
