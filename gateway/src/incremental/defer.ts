import {
  baseType,
  isCompositeType,
  isSubtype,
  parseSelectionSet,
  typenameFieldName,
  type CompositeType,
  type Operation,
  type SelectionSet,
} from '@apollo/federation-internals';
import type { DeferNode, DeferredNode, PlanNode } from '@apollo/query-planner';
import type { GraphQLError } from 'graphql';
import { compileSelectionProjection, type SelectionProjection } from '../execution/projection.ts';

/**
 * @defer, delivered part by part. The planner (with incremental delivery on) splits an operation into a primary
 * part and deferred parts, each with the selection it answers (`subselection`) and where (`queryPath`). Each of
 * those selections is compiled once per operation into a projection; at run time the initial payload is the
 * primary projection, and each deferred part becomes one `incremental` item per object it applies to.
 */

type Data = Record<string, unknown>;
type Path = (string | number)[];

/** One item of a subsequent payload (deferSpec=20220824); errors are formatted by whoever writes it. */
export interface IncrementalItem {
  data?: Data | null;
  path: Path;
  label?: string;
  errors?: GraphQLError[];
  extensions?: { valueCompletion: GraphQLError[] };
}

interface CompiledPart {
  label?: string;
  queryPath: readonly string[];
  type: CompositeType;
  project: SelectionProjection;
}

/** An operation's deferred delivery, compiled; unset when its plan has no `Defer` this can deliver in parts. */
export interface DeferredDelivery {
  /** The `Defer` node at the plan's top (under `Condition`s) and the initial payload's projection. */
  primaries: Map<DeferNode, SelectionProjection>;
  parts: Map<DeferredNode, CompiledPart>;
  /** Some part defers again within itself. */
  nested: boolean;
}

/** The `Defer` nodes a run may start with: the plan's root, or the branches of its `Condition`s. */
function topDefers(node: PlanNode | undefined, found: DeferNode[] = []): DeferNode[] | undefined {
  if (!node) return found;
  if (node.kind === 'Defer') return [...found, node];
  if (node.kind === 'Condition') {
    const then = topDefers(node.ifClause, found);
    return then && topDefers(node.elseClause, then);
  }
  // A `Defer` anywhere else (under a Sequence, say) is delivered whole.
  return containsDefer(node) ? undefined : found;
}

function containsDefer(node: PlanNode): boolean {
  switch (node.kind) {
    case 'Defer':
      return true;
    case 'Sequence':
    case 'Parallel':
      return node.nodes.some(containsDefer);
    case 'Flatten':
      return containsDefer(node.node);
    case 'Condition':
      return (!!node.ifClause && containsDefer(node.ifClause)) || (!!node.elseClause && containsDefer(node.elseClause));
    default:
      return false;
  }
}

/** The static type at a deferred part's `queryPath` (response names, `... on T` for type conditions). */
function typeAt(operation: Operation, queryPath: readonly string[]): CompositeType | undefined {
  const schema = operation.schema();
  let type: CompositeType | undefined = schema.schemaDefinition.rootType(operation.rootKind);
  let selections: SelectionSet | undefined = operation.selectionSet;
  for (const element of queryPath) {
    if (!type) return undefined;
    if (element.startsWith('... on ')) {
      const named = schema.type(element.slice('... on '.length).trim());
      type = named && isCompositeType(named) ? named : undefined;
      continue;
    }
    const field: { type: CompositeType | undefined; selections: SelectionSet | undefined } | undefined = selections && findField(selections, element);
    if (!field) return undefined;
    ({ type, selections } = field);
  }
  return type;
}

function findField(selectionSet: SelectionSet, responseName: string): { type: CompositeType | undefined; selections: SelectionSet | undefined } | undefined {
  for (const selection of selectionSet.selections()) {
    if (selection.kind === 'FieldSelection') {
      if (selection.element.responseName() !== responseName) continue;
      const named = baseType(selection.element.definition.type!);
      return { type: isCompositeType(named) ? named : undefined, selections: selection.selectionSet };
    }
    const inner = findField(selection.selectionSet, responseName);
    if (inner) return inner;
  }
  return undefined;
}

/** Compiles an operation's deferred delivery from its plan, or returns undefined when it must run whole. */
export function compileDeferredDelivery(operation: Operation, node: PlanNode | undefined): DeferredDelivery | undefined {
  const defers = topDefers(node);
  if (!defers || defers.length === 0) return undefined;
  const schema = operation.schema();
  const defaults = operation.collectDefaultedVariableValues();
  const compile = (subselection: string | undefined, parentType: CompositeType) =>
    compileSelectionProjection(
      schema,
      parseSelectionSet({ parentType, source: subselection ?? '{}', variableDefinitions: operation.variableDefinitions, fragments: operation.fragments }),
      defaults,
    );
  const rootType = schema.schemaDefinition.rootType(operation.rootKind)!;
  const delivery: DeferredDelivery = { primaries: new Map(), parts: new Map(), nested: false };
  const addParts = (defer: DeferNode): boolean => {
    for (const part of defer.deferred) {
      const type = typeAt(operation, part.queryPath);
      if (!type) return false;
      // A part that defers again answers its own primary selection, and its deferred parts come later.
      const nested = part.node?.kind === 'Defer' ? part.node : undefined;
      if (nested) delivery.nested = true;
      delivery.parts.set(part, { label: part.label, queryPath: part.queryPath, type, project: compile(nested ? nested.primary.subselection : part.subselection, type) });
      if (nested && !addParts(nested)) return false;
    }
    return true;
  };
  // The planner's primary selection leaves out the root's own `__typename`s, which the initial payload has.
  const rootTypenames = operation.selectionSet
    .selections()
    .filter((selection) => selection.kind === 'FieldSelection' && selection.element.name === typenameFieldName)
    .map(String);
  const withRootTypenames = (subselection = '{}') => (rootTypenames.length > 0 ? `{ ${rootTypenames.join(' ')} ${subselection.trim().slice(1)}` : subselection);
  for (const defer of defers) {
    delivery.primaries.set(defer, compile(withRootTypenames(defer.primary.subselection), rootType));
    if (!addParts(defer)) return undefined;
  }
  return delivery;
}

interface Position {
  path: Path;
  /** The object as delivered so far (what the client holds). */
  delivered: Data;
  /** The same object as fetched. */
  fetched: Data;
}

const isData = (value: unknown): value is Data => typeof value === 'object' && value !== null && !Array.isArray(value);

function spread(path: Path, delivered: unknown, fetched: unknown, into: Position[]): void {
  if (Array.isArray(delivered)) {
    const list = Array.isArray(fetched) ? fetched : [];
    delivered.forEach((element, index) => spread([...path, index], element, list[index], into));
  } else if (isData(delivered) && isData(fetched)) {
    into.push({ path, delivered, fetched });
  }
}

/**
 * Where a deferred part applies: every object at its `queryPath` that the client already holds (a null parent,
 * or a list element nulled by an error, gets nothing), through lists, with each position's concrete path.
 */
function positionsOf(part: CompiledPart, delivered: Data, fetched: Data, operation: Operation): Position[] {
  let current: Position[] = [{ path: [], delivered, fetched }];
  for (const element of part.queryPath) {
    if (element.startsWith('... on ')) {
      const condition = operation.schema().type(element.slice('... on '.length).trim());
      current = current.filter(({ fetched: object }) => {
        const runtime = operation.schema().type(String(object[typenameFieldName] ?? ''));
        return !!condition && isCompositeType(condition) && !!runtime && isCompositeType(runtime) && isSubtype(condition, runtime);
      });
      continue;
    }
    const next: Position[] = [];
    for (const position of current) spread([...position.path, element], position.delivered[element], position.fetched[element], next);
    current = next;
  }
  return current;
}

const startsWith = (path: readonly unknown[] | undefined, prefix: Path) => !!path && prefix.every((element, index) => path[index] === element);

/**
 * The items one deferred part adds, once its fetches ran: the part's projection at each position, merged
 * into what the client holds (so that parts deferred within it find their objects). Fetch errors go to the
 * item whose path they fall under (the first when none); without fetch errors, value-completion errors go
 * in the item's extensions, as Apollo reports them for whole answers.
 */
export function deliverPart(
  part: CompiledPart,
  operation: Operation,
  /** What the client holds; `merge` when parts deferred within this one will look for their objects in it. */
  client: { holds: Data; merge: boolean },
  fetched: Data,
  variables: Record<string, unknown> | undefined,
  fetchErrors: readonly GraphQLError[],
): IncrementalItem[] {
  const delivered = client.holds;
  const items: IncrementalItem[] = [];
  for (const position of positionsOf(part, delivered, fetched, operation)) {
    const runtime = operation.schema().type(String(position.fetched[typenameFieldName] ?? ''));
    const { data, errors } = part.project(position.fetched, variables, position.path, runtime && isCompositeType(runtime) ? runtime : part.type);
    // A copy: the item itself is written later, and parts deferred within this one merge into what is held.
    if (data && client.merge) Object.assign(position.delivered, structuredClone(data));
    // The part's fragment does not apply to this object's runtime type: nothing to send for it.
    if (data && Object.keys(data).length === 0 && errors.length === 0) continue;
    const item: IncrementalItem = { data, path: position.path };
    if (part.label !== undefined) item.label = part.label;
    if (fetchErrors.length === 0 && errors.length > 0) item.extensions = { valueCompletion: errors };
    items.push(item);
  }
  const orphans: GraphQLError[] = [];
  for (const error of fetchErrors) {
    const owner = [...items].reverse().find((item) => startsWith(error.path, item.path));
    if (owner) (owner.errors ??= []).push(error);
    else orphans.push(error);
  }
  if (orphans.length > 0) {
    // No object to attach them to (its parent is null): they still reach the client, at the part's path.
    if (items[0]) (items[0].errors ??= []).unshift(...orphans);
    else items.push({ path: [...part.queryPath], errors: orphans, ...(part.label !== undefined ? { label: part.label } : {}) });
  }
  return items;
}

export type { CompiledPart };
