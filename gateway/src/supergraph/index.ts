// What composition roots and tests use to load and follow a supergraph.
export { readSupergraph } from './load.ts';
export { followSupergraph, loadSupergraph, pollSupergraphUrl, watchSupergraphFile, type SupergraphSettings, type SupergraphSource } from './sources.ts';
