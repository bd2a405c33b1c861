import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';

export interface ExplorerOptions {
  /** Development offers the explorers; production shows Apollo's plain landing page. */
  development: boolean;
  /** Where GraphQL is served (HTTP and websocket). */
  endpoint: string;
}

export interface Explorer {
  /** The landing page plugin for Apollo Server. */
  plugin: ApolloServerPlugin;
  /** Serves the explorer's own routes; returns true when it answered. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
}

// Placeholder: the landing pages as before; the bundled GraphiQL lands in this folder.
export function createExplorer({ development }: ExplorerOptions): Explorer {
  return {
    plugin: development
      ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
      : ApolloServerPluginLandingPageProductionDefault({ footer: false }),
    handle: () => false,
  };
}
