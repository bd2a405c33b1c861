/** Bounds on what a request may carry in `variables`, checked before the document is parsed. */
export interface VariableLimits {
  /** Variables per request (declared or not). */
  maxVariables: number;
  /** Values in all the variables together, nested ones included (each list item, each input field). */
  maxValues: number;
}

/**
 * The contract's operations declare at most 4 variables, and its largest input (placeOrder's 100 items) holds
 * about 400 values: each default leaves ample room.
 */
export const DEFAULT_VARIABLE_LIMITS: VariableLimits = { maxVariables: 100, maxValues: 10_000 };

/** Nesting beyond this is refused outright: no input type of the schema comes close, and deep values cost recursion downstream. */
export const MAX_VARIABLE_DEPTH = 32;

/** Why a request is refused, for the caller to turn into an HTTP or a graphql-ws answer. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

// A variable is `$` then a name, with ignored tokens (white space, commas, comments) allowed in between.
const VARIABLE = /\$(?:[\s,\ufeff]|#[^\n\r]*)*([_A-Za-z][_0-9A-Za-z]*)/g;

/**
 * Every name that follows a `$` in the document: a superset of the variables it declares (a `$name` inside a
 * string or a comment is kept too, which is harmless). A linear scan, far cheaper than a parse.
 */
export function variableNamesIn(document: string): Set<string> {
  const names = new Set<string>();
  for (const match of document.matchAll(VARIABLE)) names.add(match[1] ?? '');
  return names;
}

/** Counts values up to the limit, without recursion: a hostile value may nest as deep as the body allows. */
function exceedsValues(variables: Record<string, unknown>, limits: VariableLimits): Refusal | undefined {
  const pending: [unknown, number][] = [];
  let seen = 0;
  // Counted as they are found, so a list of a million items is refused before it is walked.
  const visit = (values: unknown[], depth: number): Refusal | undefined => {
    if (depth > MAX_VARIABLE_DEPTH) return { status: 400, code: 'BAD_REQUEST', message: `Variable values may nest at most ${MAX_VARIABLE_DEPTH} levels deep` };
    seen += values.length;
    if (seen > limits.maxValues) return { status: 400, code: 'BAD_REQUEST', message: `Variables may hold at most ${limits.maxValues} values in all` };
    for (const value of values) if (typeof value === 'object' && value !== null) pending.push([value, depth]);
    return undefined;
  };
  let refusal = visit(Object.values(variables), 1);
  while (!refusal && pending.length > 0) {
    const [value, depth] = pending.pop()!;
    refusal = visit(Array.isArray(value) ? value : Object.values(value as object), depth + 1);
  }
  return refusal;
}

/**
 * Bounds the variables and keeps only those the document may declare (`declared`; unknown for a hash-only
 * APQ request, whose document is not at hand yet: then the bounds alone apply). A value that is not an
 * object is left for Apollo to refuse. Returns the variables to run with, or why the request is refused.
 */
export function admitVariables(variables: unknown, declared: ReadonlySet<string> | undefined, limits: VariableLimits): Refusal | { variables: unknown } {
  if (!isRecord(variables)) return { variables };
  const names = Object.keys(variables);
  if (names.length > limits.maxVariables) {
    return { status: 400, code: 'BAD_REQUEST', message: `A request may carry at most ${limits.maxVariables} variables` };
  }
  const refusal = exceedsValues(variables, limits);
  if (refusal) return refusal;
  if (!declared || names.every((name) => declared.has(name))) return { variables };
  // Undeclared variables mean nothing to the operation: dropped here, they cost nothing further along (the
  // response cache key, coercion, the subgraph requests).
  return { variables: Object.fromEntries(names.filter((name) => declared.has(name)).map((name) => [name, variables[name]])) };
}
