import { readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';

/** The subgraphs in the committed supergraph, with the URLs a local `npm start` serves them on. */
export const SUBGRAPHS = [
  { name: 'users', sdl: new URL('../../subgraphs/users/schema.graphql', import.meta.url), url: 'http://localhost:4001/graphql' },
  { name: 'orders', sdl: new URL('../../subgraphs/orders/schema.graphql', import.meta.url), url: 'http://localhost:4002/graphql' },
] as const;

export const SUPERGRAPH_PATH = new URL('../supergraph.graphql', import.meta.url);

export class CompositionError extends Error {
  constructor(readonly errors: readonly Error[]) {
    super(`Composition failed:\n${errors.map((error) => `  - ${error.message}`).join('\n')}`);
    this.name = 'CompositionError';
  }
}

export interface Composed {
  supergraphSdl: string;
  hints: string[];
}

/** The SDL of one of this repository's subgraphs, as its `schema.graphql` says. */
export const subgraphSdl = (name: (typeof SUBGRAPHS)[number]['name']): string => readFileSync(SUBGRAPHS.find((subgraph) => subgraph.name === name)!.sdl, 'utf8');

/** Composes subgraphs in-process (rover downloads binaries, so it is not an option here). */
export function composeSubgraphs(subgraphs: readonly { name: string; url: string; sdl: string }[]): Composed {
  const result = composeServices(subgraphs.map(({ name, url, sdl }) => ({ name, url, typeDefs: parse(sdl) })));
  if (result.errors) throw new CompositionError(result.errors);
  return { supergraphSdl: `${result.supergraphSdl.trimEnd()}\n`, hints: result.hints.map((hint) => hint.toString()) };
}

/** Composes this repository's subgraphs' SDL files. */
export function composeSupergraph(): Composed {
  return composeSubgraphs(SUBGRAPHS.map(({ name, url }) => ({ name, url, sdl: subgraphSdl(name) })));
}
