import { DEFAULT_SUPPORTED_SUPERGRAPH_FEATURES } from '@apollo/federation-internals';

// `for: SECURITY` features @apollo/gateway refuses and this gateway serves: the authorization directives, which
// it enforces, and @context/@fromContext, whose rewrites its executor runs.
const SECURITY_FEATURES = [
  'https://specs.apollo.dev/authenticated/v0.1',
  'https://specs.apollo.dev/requiresScopes/v0.1',
  'https://specs.apollo.dev/policy/v0.1',
  'https://specs.apollo.dev/context/v0.1',
];
/** A whole `@link(...)` of one of `urls`: its arguments hold no parentheses (a URL, `as`, `for`, an import list). */
const linkOf = (urls: readonly string[], flags?: string) => new RegExp(`@link\\(url: "(?:${urls.map((url) => url.replace(/[.]/g, '\\.')).join('|')})"[^)]*\\)`, flags);

/** What this gateway's executor serves: Apollo's defaults, the authorization directives and @context. */
export const SUPPORTED_SUPERGRAPH_FEATURES: Set<string> = new Set([...DEFAULT_SUPPORTED_SUPERGRAPH_FEATURES, ...SECURITY_FEATURES]);

/** Whether a supergraph needs this gateway's own executor: Apollo's would ignore the directives and the context rewrites. */
export const needsOwnExecutor = (supergraphSdl: string) => linkOf(SECURITY_FEATURES).test(supergraphSdl);

/**
 * The supergraph as @apollo/gateway is given it. It refuses any `for: SECURITY` feature it does not implement;
 * it only loads the schema here (the own executor runs them), so those links lose their `for:`.
 */
export const forApolloGateway = (supergraphSdl: string) => supergraphSdl.replace(linkOf(SECURITY_FEATURES, 'g'), (link) => link.replace(/,\s*for: SECURITY\b/, ''));
