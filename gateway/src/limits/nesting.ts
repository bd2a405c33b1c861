/**
 * Brackets (`{`, `[`, `(`) a document may nest. graphql-js parses recursively, and so do the validation rules
 * and the federation planner: a few thousand levels, well within MAX_TOKENS, overflow the stack (a nested
 * list literal in the parser; inline fragments inside inline fragments in the planner, which answered a
 * 500). The deepest operation of the contract nests 8; one at MAX_DEPTH (16 fields) about 20.
 */
export const MAX_DOCUMENT_NESTING = 64;

/**
 * The deepest bracket nesting of a document, up to `limit` (it stops there): a linear scan that skips
 * strings, block strings and comments, far cheaper than a parse. Unbalanced text is the parser's to refuse.
 */
export function nestingExceeds(document: string, limit = MAX_DOCUMENT_NESTING): boolean {
  let depth = 0;
  for (let i = 0; i < document.length; i++) {
    const char = document[i];
    if (char === '{' || char === '[' || char === '(') {
      if (++depth > limit) return true;
    } else if (char === '}' || char === ']' || char === ')') {
      depth = Math.max(0, depth - 1);
    } else if (char === '#') {
      while (i + 1 < document.length && document[i + 1] !== '\n' && document[i + 1] !== '\r') i++;
    } else if (char === '"') {
      if (document.startsWith('"""', i)) {
        // A block string ends at the next unescaped """.
        let end = i + 3;
        for (;;) {
          end = document.indexOf('"""', end);
          if (end === -1 || document[end - 1] !== '\\') break;
          end += 3;
        }
        i = end === -1 ? document.length : end + 2;
      } else {
        let end = i + 1;
        while (end < document.length && document[end] !== '"' && document[end] !== '\n') end += document[end] === '\\' ? 2 : 1;
        i = end;
      }
    }
  }
  return false;
}
