import type { Operation } from '@apollo/federation-internals';
import type { DeferNode, PlanNode } from '@apollo/query-planner';
import { GraphQLError } from 'graphql';
import { executePlanNode, rootCursor, runDeferredParts, type PlanRun, type SupergraphTypes } from '../execution/plan.ts';
import type { ProjectionResult } from '../execution/projection.ts';
import { deliverPart, type DeferredDelivery, type IncrementalItem } from './defer.ts';

/**
 * Where the HTTP front and the engine meet for one request: the front creates it when the client takes
 * multipart answers; the engine fills `subsequent` when it delivers the answer in parts.
 */
export interface IncrementalSlot {
  subsequent?: AsyncIterable<IncrementalItem[]>;
  /**
   * The whole answer's JSON once every part ran, as a plain request gets it; undefined when it has errors. Only
   * computed when asked for (by the response cache).
   */
  whole?: () => Promise<string | undefined>;
}

/** What the engine shapes into the initial payload: a primary part's projection and its fetch errors. */
export interface InitialPart {
  projected: ProjectionResult;
  fetchErrors: unknown[];
}

export type IncrementalOutcome =
  | { kind: 'whole'; input: Record<string, unknown>; errors: unknown[] }
  | {
      kind: 'parts';
      initial: InitialPart;
      subsequent: AsyncIterable<IncrementalItem[]>;
      /** Every fetch error of every part, once all ran; `input` then holds everything fetched. */
      finished: Promise<unknown[]>;
      input: Record<string, unknown>;
    };

const asGraphQLError = (error: unknown) =>
  error instanceof GraphQLError ? error : new GraphQLError(error instanceof Error ? error.message : String(error), { originalError: error instanceof Error ? error : undefined });

/** Items as they are ready, to one reader, ended once every part ran. */
function createQueue<T>() {
  const ready: T[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(value: T) {
      ready.push(value);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator](): AsyncIterator<T> {
      for (;;) {
        if (ready.length > 0) {
          yield ready.shift()!;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
}

/**
 * Runs a plan with its `Defer` node part by part. Resolves once the primary part ran, with its projection
 * (the initial payload) and the parts still running, in the order they finish; or, when no `Defer` ran (a
 * `@defer(if: false)`), with the whole input once everything ran.
 */
export function runIncrementally(options: {
  operation: Operation;
  delivery: DeferredDelivery;
  node: PlanNode;
  run: Omit<PlanRun, 'errors' | 'defer'>;
  types: SupergraphTypes;
  variables: Record<string, unknown> | undefined;
}): Promise<IncrementalOutcome> {
  const { operation, delivery, node, types, variables } = options;
  const input: Record<string, unknown> = {};
  const rootType = operation.schema().schemaDefinition.rootType(operation.rootKind)!;
  const queue = createQueue<IncrementalItem[]>();
  let resolveOutcome!: (outcome: IncrementalOutcome) => void;
  const outcome = new Promise<IncrementalOutcome>((resolve) => (resolveOutcome = resolve));
  let started = false;
  const allErrors: unknown[] = [];
  let finish!: (errors: unknown[]) => void;
  const finished = new Promise<unknown[]>((resolve) => (finish = resolve));
  // What the client holds: merged item by item, so that parts deferred within parts find their objects.
  let delivered: Record<string, unknown> = {};

  const runParts = (defer: DeferNode): Promise<void> =>
    runDeferredParts(defer, async (part) => {
      const partRun: PlanRun = { ...options.run, errors: [] };
      const nested = part.node?.kind === 'Defer' ? part.node : undefined;
      const partNode = nested ? nested.primary.node : part.node;
      try {
        if (partNode) await executePlanNode(partRun, types, partNode, rootCursor(input));
        allErrors.push(...partRun.errors);
        queue.push(deliverPart(delivery.parts.get(part)!, operation, { holds: delivered, merge: delivery.nested }, input, variables, partRun.errors.map(asGraphQLError)));
      } catch (error) {
        // A subgraph answer the projection cannot shape: this part fails, the others go on.
        allErrors.push(error);
        queue.push([{ path: [...part.queryPath], errors: [asGraphQLError(error)], ...(part.label !== undefined ? { label: part.label } : {}) }]);
        return;
      }
      if (nested) await runParts(nested);
    });

  const run: PlanRun = {
    ...options.run,
    errors: [],
    defer: async (defer, cursor) => {
      const project = delivery.primaries.get(defer);
      if (started || !project) {
        // Not a `Defer` this delivery compiled: run it whole, inside the part that reached it.
        await executePlanNode({ ...run, defer: undefined }, types, defer, cursor);
        return;
      }
      started = true;
      if (defer.primary.node) await executePlanNode(run, types, defer.primary.node, cursor);
      const projected = project(input, variables, [], rootType);
      allErrors.push(...run.errors);
      resolveOutcome({ kind: 'parts', initial: { projected, fetchErrors: [...run.errors] }, subsequent: queue, finished, input });
      if (!projected.data) return;
      // Parts deferred within parts look for their objects in what the client holds, which then grows with
      // every part: a copy, since the first part may not be written yet. Without such parts, it never changes.
      delivered = delivery.nested ? structuredClone(projected.data) : projected.data;
      // The first part goes out first: its serialisation and write are promise continuations, which all run
      // before the next turn of the event loop, where the deferred parts' fetches start.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await runParts(defer);
    },
  };

  executePlanNode(run, types, node, rootCursor(input))
    .then(
      () => {
        if (!started) resolveOutcome({ kind: 'whole', input, errors: run.errors });
      },
      (error: unknown) => {
        if (!started) resolveOutcome({ kind: 'whole', input, errors: [...run.errors, error] });
        else queue.push([{ path: [], errors: [asGraphQLError(error)] }]);
        allErrors.push(error);
      },
    )
    .finally(() => {
      queue.end();
      finish(allErrors);
    });
  return outcome;
}
