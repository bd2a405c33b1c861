import { StringDecoder } from 'node:string_decoder';

/**
 * Reads a `multipart/mixed; boundary="-"` answer (@defer, deferSpec=20220824) as it streams in, and says when each
 * part is whole: a part is complete once the delimiter after it (`\r\n---`, or the close delimiter `\r\n-----`)
 * has arrived, which is when Apollo Client reads it. Each part's body is JSON (its headers are skipped).
 *
 * Framing, as this gateway (and Apollo Server, Apollo Router) writes it:
 * `\r\n---\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{json}\r\n---\r\n…\r\n{json}\r\n-----\r\n`.
 */
export class MultipartReader {
  private readonly decoder = new StringDecoder('utf8');
  private readonly delimiter: string;
  private text = '';
  private opened = false;
  /** Every part read so far, parsed. */
  readonly parts: unknown[] = [];
  /** The close delimiter has arrived: nothing follows. */
  ended = false;

  constructor(boundary = '-') {
    this.delimiter = `\r\n--${boundary}`;
  }

  /** Feeds the next chunk of the body; returns how many parts it completed (0 when none). */
  push(chunk: Buffer | string): number {
    if (this.ended) return 0;
    this.text += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const before = this.parts.length;
    for (;;) {
      if (!this.opened) {
        // The first delimiter may open the body without the CRLF before it (an empty preamble).
        const bare = this.delimiter.slice(2);
        const at = this.text.startsWith(bare) ? -2 : this.text.indexOf(this.delimiter);
        if (at === -1) break;
        this.text = this.text.slice(at + this.delimiter.length);
        this.opened = true;
        continue;
      }
      // Right after a delimiter: `--` closes the body, anything else starts a part.
      if (this.text.length < 2) break;
      if (this.text.startsWith('--')) {
        this.ended = true;
        this.text = '';
        break;
      }
      const end = this.text.indexOf(this.delimiter);
      if (end === -1) break;
      this.parts.push(JSON.parse(bodyOf(this.text.slice(0, end))));
      this.text = this.text.slice(end + this.delimiter.length);
    }
    return this.parts.length - before;
  }
}

/** A part without its delimiter line's end and its headers: what follows the first empty line. */
function bodyOf(part: string): string {
  // The rest of the delimiter line (transport padding, then CRLF).
  const lineEnd = part.indexOf('\r\n');
  const rest = lineEnd === -1 ? part : part.slice(lineEnd + 2);
  // No headers: the empty line comes at once.
  if (rest.startsWith('\r\n')) return rest.slice(2);
  const headersEnd = rest.indexOf('\r\n\r\n');
  if (headersEnd === -1) throw new Error(`a part without the empty line after its headers: ${part.slice(0, 120)}`);
  return rest.slice(headersEnd + 4);
}

/** A part of an answer with @defer (deferSpec=20220824): the first `{ data, errors?, hasNext }`, then `{ incremental, hasNext }`. */
export interface DeferPart {
  data?: unknown;
  errors?: unknown[];
  incremental?: { data?: unknown; items?: unknown[]; path: (string | number)[]; label?: string; errors?: unknown[] }[];
  hasNext?: boolean;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** `patch` merged into `target` in place: objects field by field, lists item by item, anything else replaced. */
function mergeInto(target: unknown, patch: unknown): unknown {
  if (isObject(target) && isObject(patch)) {
    for (const [key, value] of Object.entries(patch)) target[key] = key in target ? mergeInto(target[key], value) : value;
    return target;
  }
  if (Array.isArray(target) && Array.isArray(patch)) {
    patch.forEach((item, index) => (target[index] = index < target.length ? mergeInto(target[index], item) : item));
    return target;
  }
  return patch;
}

/**
 * The whole answer the parts make, as a client that reads them builds it: each deferred item's `data` merged at its
 * `path`, each streamed item's `items` appended to the list there; the errors of every part together. Throws when a
 * path leads nowhere.
 */
export function mergeParts(parts: readonly DeferPart[]): { data: unknown; errors: unknown[]; hasNext: boolean | undefined } {
  const [first, ...rest] = parts;
  if (!first) throw new Error('no part');
  const data = structuredClone(first.data);
  const errors = [...(first.errors ?? [])];
  let hasNext = first.hasNext;
  for (const part of rest) {
    for (const item of part.incremental ?? []) {
      let at: unknown = data;
      for (const step of item.path) {
        at = Array.isArray(at) && typeof step === 'number' ? at[step] : isObject(at) && typeof step === 'string' ? at[step] : undefined;
        if (at === undefined) throw new Error(`an incremental item's path leads nowhere: ${JSON.stringify(item.path)}`);
      }
      if (item.items) {
        if (!Array.isArray(at)) throw new Error(`streamed items for a path that is not a list: ${JSON.stringify(item.path)}`);
        at.push(...item.items);
      } else if (item.data !== undefined && item.data !== null) {
        mergeInto(at, item.data);
      }
      errors.push(...(item.errors ?? []));
    }
    errors.push(...(part.errors ?? []));
    if (part.hasNext !== undefined) hasNext = part.hasNext;
  }
  return { data, errors, hasNext };
}
