import { Kind, parse, valueFromASTUntyped, type ConstDirectiveNode, type DocumentNode } from 'graphql';
import type { Viewer } from '@fed/platform';

/**
 * What one schema element asks of the viewer (`@authenticated`, `@requiresScopes`, `@policy`, as the
 * directives' specification reads them): `anyOf` is a list of alternatives, each a list that must all hold.
 */
export type Condition = { kind: 'authenticated' } | { kind: 'scopes'; anyOf: string[][] } | { kind: 'policies'; anyOf: string[][] };

/** A named policy from the gateway's config: true lets the viewer read what `@policy` guards with its name. */
export type Policy = (viewer: Viewer | null) => boolean | Promise<boolean>;

export interface AuthorizationRules {
  /** Conditions on a field of a type (`Type.field`), from its own directives. */
  fields: Map<string, Condition[]>;
  /** Conditions on a type: every field returning it, and every fragment on it, has them too. */
  types: Map<string, Condition[]>;
  /** Scopes and policies the supergraph names anywhere. */
  scopes: Set<string>;
  policies: Set<string>;
}

type Spec = 'authenticated' | 'requiresScopes' | 'policy';
const SPECS: Record<string, Spec> = {
  'https://specs.apollo.dev/authenticated/v0.1': 'authenticated',
  'https://specs.apollo.dev/requiresScopes/v0.1': 'requiresScopes',
  'https://specs.apollo.dev/policy/v0.1': 'policy',
};

/**
 * The names the supergraph gives the directives: each spec's `@link` may rename it (`as:` renames the namespace,
 * an import `{ name: "@authenticated", as: "@auth" }` the directive). Specs it does not link are absent.
 */
function directiveNames(document: DocumentNode): Map<string, Spec> {
  const names = new Map<string, Spec>();
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const link of definition.directives ?? []) {
      if (link.name.value !== 'link') continue;
      const args = Object.fromEntries((link.arguments ?? []).map((arg) => [arg.name.value, valueFromASTUntyped(arg.value) as unknown]));
      const spec = typeof args.url === 'string' ? SPECS[args.url] : undefined;
      if (!spec) continue;
      let name = typeof args.as === 'string' ? args.as : spec;
      for (const entry of Array.isArray(args.import) ? (args.import as unknown[]) : []) {
        if (entry === `@${spec}`) name = spec;
        else if (entry && typeof entry === 'object' && (entry as { name?: unknown }).name === `@${spec}` && typeof (entry as { as?: unknown }).as === 'string') {
          name = ((entry as { as: string }).as).replace(/^@/, '');
        }
      }
      names.set(name, spec);
    }
  }
  return names;
}

function conditionOf(spec: Spec, directive: ConstDirectiveNode): Condition {
  if (spec === 'authenticated') return { kind: 'authenticated' };
  const argument = directive.arguments?.find((arg) => arg.name.value === (spec === 'requiresScopes' ? 'scopes' : 'policies'));
  const value = argument ? (valueFromASTUntyped(argument.value) as unknown) : undefined;
  const anyOf = Array.isArray(value) ? value.map((all: unknown) => (Array.isArray(all) ? all.map(String) : [String(all)])) : [];
  return spec === 'requiresScopes' ? { kind: 'scopes', anyOf } : { kind: 'policies', anyOf };
}

/** The authorization directives of a supergraph; undefined when it has none (nothing to check per request). */
export function readAuthorizationRules(supergraphSdl: string): AuthorizationRules | undefined {
  const rules: AuthorizationRules = { fields: new Map(), types: new Map(), scopes: new Set(), policies: new Set() };
  const document = parse(supergraphSdl);
  const names = directiveNames(document);
  if (names.size === 0) return undefined;
  const add = (map: Map<string, Condition[]>, key: string, directives: readonly ConstDirectiveNode[] | undefined) => {
    for (const directive of directives ?? []) {
      const spec = names.get(directive.name.value);
      if (!spec) continue;
      const condition = conditionOf(spec, directive);
      map.set(key, [...(map.get(key) ?? []), condition]);
      if (condition.kind === 'scopes') for (const all of condition.anyOf) for (const scope of all) rules.scopes.add(scope);
      if (condition.kind === 'policies') for (const all of condition.anyOf) for (const policy of all) rules.policies.add(policy);
    }
  };
  for (const definition of document.definitions) {
    switch (definition.kind) {
      case Kind.OBJECT_TYPE_DEFINITION:
      case Kind.OBJECT_TYPE_EXTENSION:
      case Kind.INTERFACE_TYPE_DEFINITION:
      case Kind.INTERFACE_TYPE_EXTENSION:
        add(rules.types, definition.name.value, definition.directives);
        for (const field of definition.fields ?? []) add(rules.fields, `${definition.name.value}.${field.name.value}`, field.directives);
        break;
      case Kind.SCALAR_TYPE_DEFINITION:
      case Kind.SCALAR_TYPE_EXTENSION:
      case Kind.ENUM_TYPE_DEFINITION:
      case Kind.ENUM_TYPE_EXTENSION:
        add(rules.types, definition.name.value, definition.directives);
        break;
      default:
        break;
    }
  }
  return rules.fields.size > 0 || rules.types.size > 0 ? rules : undefined;
}

/** What a viewer holds, as far as one supergraph's rules look: evaluated once per request that needs it. */
export interface Grants {
  authenticated: boolean;
  scopes: ReadonlySet<string>;
  policies: ReadonlySet<string>;
}

/**
 * The viewer's grants under `rules`: only the scopes the supergraph names, and the policies it names that the
 * config's functions grant (a policy the config lacks is never granted: a typo fails closed).
 */
export async function grantsOf(rules: AuthorizationRules, viewer: Viewer | null, policies: Readonly<Record<string, Policy>>): Promise<Grants> {
  const scopes = new Set((viewer?.scopes ?? []).filter((scope) => rules.scopes.has(scope)));
  const granted = new Set<string>();
  await Promise.all(
    [...rules.policies].map(async (name) => {
      const policy = Object.hasOwn(policies, name) ? policies[name] : undefined;
      try {
        if (policy && (await policy(viewer)) === true) granted.add(name);
      } catch {
        // A policy that fails grants nothing: the field is refused, never served by accident.
      }
    }),
  );
  return { authenticated: viewer !== null, scopes, policies: granted };
}

export function satisfies(condition: Condition, grants: Grants): boolean {
  switch (condition.kind) {
    case 'authenticated':
      return grants.authenticated;
    case 'scopes':
      return condition.anyOf.some((all) => all.every((scope) => grants.scopes.has(scope)));
    case 'policies':
      return condition.anyOf.some((all) => all.every((policy) => grants.policies.has(policy)));
  }
}

/** A short, stable name for a set of grants: answers cached for one set are never served to another. */
export const grantsKey = (grants: Grants) => `${grants.authenticated ? 'a' : '-'}|${[...grants.scopes].sort().join(' ')}|${[...grants.policies].sort().join(' ')}`;
