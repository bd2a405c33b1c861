import { DEFAULT_SUPPORTED_SUPERGRAPH_FEATURES } from '@apollo/federation-internals';

const SECURITY_FEATURES = ['https://specs.apollo.dev/authenticated/v0.1', 'https://specs.apollo.dev/requiresScopes/v0.1', 'https://specs.apollo.dev/policy/v0.1'];

/** What this gateway's executor serves: Apollo's defaults, and the authorization directives it enforces. */
export const SUPPORTED_SUPERGRAPH_FEATURES: Set<string> = new Set([...DEFAULT_SUPPORTED_SUPERGRAPH_FEATURES, ...SECURITY_FEATURES]);

// A whole `@link(...)` of one of them: its arguments hold no parentheses (a URL, `as`, `for`, an import list).
const SECURITY_LINK = `@link\\(url: "(?:${SECURITY_FEATURES.map((url) => url.replace(/[.]/g, '\\.')).join('|')})"[^)]*\\)`;

/** Whether a supergraph uses the authorization directives (only this gateway's executor enforces them). */
export const usesAuthorizationDirectives = (supergraphSdl: string) => new RegExp(SECURITY_LINK).test(supergraphSdl);

/**
 * The supergraph as @apollo/gateway is given it. It refuses any `for: SECURITY` feature it does not implement;
 * it only loads the schema here (the own executor enforces the directives), so those links lose their `for:`.
 */
export const forApolloGateway = (supergraphSdl: string) =>
  supergraphSdl.replace(new RegExp(SECURITY_LINK, 'g'), (link) => link.replace(/,\s*for: SECURITY\b/, ''));
