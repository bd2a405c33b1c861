import type { CompositeType, Directive, Variable } from '@apollo/federation-internals';
import type { Level } from './compiled-level.ts';

/**
 * An operation's selections as the projection compiles them once: directives reduced to conditions, types to
 * shapes. The interpreter (`projection.ts`) and the generated levels (`compiled-level.ts`) both read them.
 */

/** `@skip(if:)` / `@include(if:)`, reduced to a literal or a variable read. */
export interface Condition {
  directive: Directive<never, { if: boolean | Variable }>;
  literal?: boolean;
  variable?: string;
}

export interface Guard {
  skip?: Condition;
  include?: Condition;
}

export const enum Kind {
  Typename,
  Value,
  Fragment,
}

export interface TypenameSelection {
  kind: Kind.Typename;
  guard?: Guard;
  responseName: string;
  /** A response name a prototype also has (`constructor`): read it as an own property only. */
  inherited: boolean;
}

export interface ValueSelection {
  kind: Kind.Value;
  guard?: Guard;
  responseName: string;
  inherited: boolean;
  /**
   * No other selection of the same object (through its fragments) writes this response name, and no prototype
   * has it: the output never holds a value for it yet, and nothing needs merging.
   */
  fresh: boolean;
  type: Shape;
  selections?: Selections;
  /** The generated projection of `selections`, when they are plain (see compiled-level.ts). */
  level?: Level;
}

export interface FragmentSelection {
  kind: Kind.Fragment;
  guard?: Guard;
  typeCondition?: CompositeType;
  selections: Selections;
  /** Whether the condition holds, by runtime `__typename` (or, without one, by parent type). */
  applies: Map<string, boolean>;
}

export type Selection = TypenameSelection | ValueSelection | FragmentSelection;
export type Selections = readonly Selection[];

export const enum ShapeKind {
  NonNull,
  List,
  Composite,
  Leaf,
}

export type CompositeShape = { kind: ShapeKind.Composite; type: CompositeType; label: string };
export type Shape =
  | { kind: ShapeKind.NonNull; of: Shape; label: string }
  | { kind: ShapeKind.List; of: Shape; label: string }
  | CompositeShape
  | { kind: ShapeKind.Leaf; valid: (value: unknown) => boolean; label: string };
