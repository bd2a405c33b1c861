import type { ApolloServerPlugin, GraphQLServerListener, LandingPage } from '@apollo/server';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';

const BAR_HEIGHT = '2.25rem';

/**
 * What goes into Apollo's page: a bar above Sandbox that links to the bundled GraphiQL, and, when the Sandbox
 * script did not load (offline, or its CDN blocked), a redirect straight there. Apollo's page forbids inline
 * code without its nonce, so both reuse it.
 */
export function offlineExplorerAddition(nonce: string | undefined, graphiqlPath: string): string {
  const nonceAttribute = nonce ? ` nonce="${nonce}"` : '';
  const href = JSON.stringify(graphiqlPath);
  return `
<style${nonceAttribute}>
  .offline-explorer {
    position: fixed; top: 0; left: 0; right: 0; z-index: 1; box-sizing: border-box; height: ${BAR_HEIGHT};
    display: flex; align-items: center; gap: 0.5em; padding: 0 1em;
    font: 14px/1 system-ui, -apple-system, "Segoe UI", sans-serif; background: #1b2240; color: #e7e9f0;
  }
  .offline-explorer a { color: #9ec5ff; font-weight: 600; }
  #embeddableSandbox { top: ${BAR_HEIGHT}; height: calc(100vh - ${BAR_HEIGHT}); }
  .fallback { margin-top: ${BAR_HEIGHT}; }
</style>
<nav class="offline-explorer" aria-label="Explorers">
  <span>Apollo Sandbox needs Apollo's CDN.</span>
  <a id="offline-explorer-link" href=${href}>Open the bundled GraphiQL</a>
  <span>(works offline)</span>
</nav>
<script${nonceAttribute}>
  // The Sandbox script tag above blocks parsing until it has loaded or failed: by now its global exists or never will.
  if (typeof window.EmbeddedSandbox !== 'function') window.location.replace(${href});
</script>
`;
}

/** Apollo's landing page with the offline explorer added just before `</body>`. */
export function withOfflineExplorer(html: string, graphiqlPath: string): string {
  const nonce = /<script nonce="([^"]+)"/.exec(html)?.[1];
  const addition = offlineExplorerAddition(nonce, graphiqlPath);
  const end = html.lastIndexOf('</body>');
  return end === -1 ? html + addition : html.slice(0, end) + addition + html.slice(end);
}

/**
 * Apollo's local landing page (the embedded Sandbox, from Apollo's CDN) plus a way to the bundled GraphiQL,
 * which is the only explorer that works without internet.
 */
export function sandboxLandingPageWithOfflineExplorer(graphiqlPath: string): ApolloServerPlugin {
  const sandbox = ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false });
  return {
    async serverWillStart(service): Promise<GraphQLServerListener | void> {
      const listener = await sandbox.serverWillStart?.(service);
      const render = listener?.renderLandingPage;
      if (!listener || !render) throw new Error("Apollo's local landing page no longer renders a page: the offline explorer link has nowhere to go");
      return {
        ...listener,
        async renderLandingPage(): Promise<LandingPage> {
          const page = await render();
          // Apollo renders a fresh nonce for every request, so the addition is made per request too.
          return { html: async () => withOfflineExplorer(typeof page.html === 'string' ? page.html : await page.html(), graphiqlPath) };
        },
      };
    },
  };
}
