import type { GraphQLResolveInfo } from 'graphql';

/** A strictly typed resolver: subgraphs describe their resolver maps with this instead of `any`. */
export type Resolver<TParent, TArgs, TContext, TResult> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo,
) => TResult | Promise<TResult>;

/** Entity reference resolution, as @apollo/subgraph calls it. */
export type ReferenceResolver<TRef, TContext, TResult> = (
  reference: TRef,
  context: TContext,
  info: GraphQLResolveInfo,
) => TResult | Promise<TResult>;
