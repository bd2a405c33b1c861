import {
  defaultFieldResolver,
  getNamedType,
  isCompositeType,
  isObjectType,
  type ConstDirectiveNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLFieldResolver,
  type GraphQLResolveInfo,
  type GraphQLSchema,
} from 'graphql';

// The same rules as Apollo Server's cache control plugin (`@apollo/server/plugin/cacheControl`), which the
// gateway's response cache depends on through each subgraph's Cache-Control header. That plugin learns about a
// field through `willResolveField`, which Apollo can only deliver by wrapping every resolver of the schema it
// executes; compiled queries run on a schema of their own, so the same hints are recorded here, by wrapping only
// the fields that can change the outcome.

export type CacheScope = 'PUBLIC' | 'PRIVATE';

export interface CacheHint {
  maxAge?: number;
  scope?: CacheScope;
}

/** A @cacheControl directive as written: a hint, or "inherit the parent's maxAge" (with an optional scope). */
interface CacheAnnotation extends CacheHint {
  inheritMaxAge?: true;
}

/** What Apollo's `requestContext.overallCachePolicy` offers; the hints of every field are folded into it. */
export interface CachePolicyLike extends CacheHint {
  restrict(hint: CacheHint): void;
}

const HINTS = Symbol('compiledCacheHints');

/** Where the fields of one request record their hints: carried on the request's context under a symbol. */
export interface RequestCacheHints {
  overall: CachePolicyLike;
  /** Fields whose resolvers may still add a hint of their own; folded in once execution has finished. */
  pending: FieldCachePolicy[];
}

export function restrictPolicy(policy: CacheHint, hint: CacheHint): void {
  if (hint.maxAge !== undefined && (policy.maxAge === undefined || hint.maxAge < policy.maxAge)) policy.maxAge = hint.maxAge;
  if (hint.scope !== undefined && policy.scope !== 'PRIVATE') policy.scope = hint.scope;
}

function replacePolicy(policy: CacheHint, hint: CacheHint): void {
  if (hint.maxAge !== undefined) policy.maxAge = hint.maxAge;
  if (hint.scope !== undefined) policy.scope = hint.scope;
}

/**
 * A field's policy while it resolves, which is also what its resolver finds as `info.cacheControl` (the
 * `@apollo/subgraph` `_entities` resolver restricts it by each representation's type). One object per call.
 */
export class FieldCachePolicy implements CacheHint {
  maxAge: number | undefined;
  scope: CacheScope | undefined;
  readonly cacheHint: FieldCachePolicy = this;

  constructor(
    start: CacheHint,
    /** Apollo's default (maxAge 0) applies when nothing set a maxAge: objects that do not inherit, and root fields. */
    private readonly zeroWhenUnset: boolean,
    readonly cacheHintFromType: (type: GraphQLCompositeType) => CacheAnnotation,
  ) {
    this.maxAge = start.maxAge;
    this.scope = start.scope;
  }

  restrict(hint: CacheHint): void {
    restrictPolicy(this, hint);
  }

  replace(hint: CacheHint): void {
    replacePolicy(this, hint);
  }

  setCacheHint(hint: CacheHint): void {
    replacePolicy(this, hint);
  }

  policyIfCacheable(): Required<CacheHint> | null {
    if (this.maxAge === undefined || this.maxAge === 0) return null;
    return { maxAge: this.maxAge, scope: this.scope ?? 'PUBLIC' };
  }

  /** What Apollo does when the field's result is finished. */
  settle(overall: CachePolicyLike): void {
    if (this.maxAge === undefined && this.zeroWhenUnset) this.maxAge = 0;
    overall.restrict(this);
  }
}

function annotationFromDirectives(directives: readonly ConstDirectiveNode[] | undefined): CacheAnnotation | undefined {
  const directive = directives?.find((node) => node.name.value === 'cacheControl');
  if (!directive?.arguments) return undefined;
  const argument = (name: string) => directive.arguments?.find((node) => node.name.value === name)?.value;
  const maxAge = argument('maxAge');
  const scopeValue = argument('scope');
  const inherit = argument('inheritMaxAge');
  const scopeName = scopeValue?.kind === 'EnumValue' ? scopeValue.value : undefined;
  const scope = scopeName === 'PUBLIC' || scopeName === 'PRIVATE' ? scopeName : undefined;
  if (inherit?.kind === 'BooleanValue' && inherit.value) return { inheritMaxAge: true, scope };
  return { maxAge: maxAge?.kind === 'IntValue' ? parseInt(maxAge.value, 10) : undefined, scope };
}

function typeAnnotation(type: GraphQLCompositeType): CacheAnnotation {
  const own = annotationFromDirectives(type.astNode?.directives);
  if (own) return own;
  for (const extension of type.extensionASTNodes) {
    const hint = annotationFromDirectives(extension.directives);
    if (hint) return hint;
  }
  return {};
}

/** How one field starts out, before its resolver runs: Apollo's `willResolveField`, computed once per field. */
function fieldStart(field: GraphQLField<unknown, unknown>, annotationOf: (type: GraphQLCompositeType) => CacheAnnotation) {
  const start: CacheHint = {};
  let inherit = false;
  const target = getNamedType(field.type);
  const composite = isCompositeType(target);
  if (composite) {
    const fromType = annotationOf(target);
    replacePolicy(start, fromType);
    inherit = Boolean(fromType.inheritMaxAge);
  }
  const fromField = annotationFromDirectives(field.astNode?.directives) ?? {};
  if (fromField.inheritMaxAge && start.maxAge === undefined) {
    inherit = true;
    if (fromField.scope) replacePolicy(start, { scope: fromField.scope });
  } else {
    replacePolicy(start, fromField);
  }
  return { start, zeroNested: composite && !inherit };
}

const isRestricted = (hint: CacheHint) => hint.maxAge !== undefined || hint.scope !== undefined;

/** Starts recording the hints of a request that is about to run on an instrumented schema. */
export function beginCacheHints(contextValue: object, overall: CachePolicyLike): RequestCacheHints | undefined {
  // Apollo ignores every field's hint when a plugin fixed the policy before execution began.
  if (isRestricted(overall)) return undefined;
  const hints: RequestCacheHints = { overall, pending: [] };
  Object.defineProperty(contextValue, HINTS, { value: hints, configurable: true });
  return hints;
}

/** Folds in the hints of resolvers that could still change their own once execution is over. */
export function finishCacheHints(hints: RequestCacheHints | undefined): void {
  if (!hints) return;
  for (const field of hints.pending) field.settle(hints.overall);
  hints.pending.length = 0;
}

const hintsOf = (contextValue: unknown) => (contextValue as { [HINTS]?: RequestCacheHints } | null | undefined)?.[HINTS];

/**
 * Wraps the fields of `schema` (a schema this module owns: it is changed in place) so that executing it records
 * exactly the cache hints Apollo's cache control plugin would. Fields with a resolver get `info.cacheControl`;
 * fields without one are wrapped only when their hint restricts the response, so plain properties stay plain.
 */
export function instrumentCacheHints(schema: GraphQLSchema): GraphQLSchema {
  const annotations = new Map<GraphQLCompositeType, CacheAnnotation>();
  const annotationOf = (type: GraphQLCompositeType) => {
    let annotation = annotations.get(type);
    if (!annotation) {
      annotation = typeAnnotation(type);
      annotations.set(type, annotation);
    }
    return annotation;
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__') || !isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      const { start, zeroNested } = fieldStart(field, annotationOf);
      const resolve = field.resolve;
      if (resolve) {
        field.resolve = withDynamicHints(resolve, start, zeroNested, annotationOf);
        continue;
      }
      const nested: CacheHint = { scope: start.scope, maxAge: start.maxAge ?? (zeroNested ? 0 : undefined) };
      const root: CacheHint = { scope: start.scope, maxAge: start.maxAge ?? 0 };
      // A field without a resolver is a root field only on a root type.
      const rootType = type === schema.getQueryType() || type === schema.getMutationType() || type === schema.getSubscriptionType();
      if (isRestricted(nested) || (rootType && isRestricted(root))) field.resolve = withStaticHint(nested, root);
    }
  }
  return schema;
}

type Resolver = GraphQLFieldResolver<unknown, unknown>;

function withDynamicHints(resolve: Resolver, start: CacheHint, zeroNested: boolean, cacheHintFromType: (type: GraphQLCompositeType) => CacheAnnotation): Resolver {
  return (source, args, contextValue, info) => {
    const policy = new FieldCachePolicy(start, zeroNested || info.path.prev === undefined, cacheHintFromType);
    (info as GraphQLResolveInfo & { cacheControl?: FieldCachePolicy }).cacheControl = policy;
    hintsOf(contextValue)?.pending.push(policy);
    return resolve(source, args, contextValue, info);
  };
}

function withStaticHint(nested: CacheHint, root: CacheHint): Resolver {
  return (source, args, contextValue, info) => {
    hintsOf(contextValue)?.overall.restrict(info.path.prev === undefined ? root : nested);
    return defaultFieldResolver(source, args, contextValue, info);
  };
}
