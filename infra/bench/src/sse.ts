import { StringDecoder } from 'node:string_decoder';

/** One server-sent event: its type (`message` unless named), its data lines joined by `\n`, and its id if any. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Reads a `text/event-stream` as it streams in (the WHATWG event-stream format, as graphql-sse writes it:
 * `event: next\ndata: {...}\n\n`): lines end in LF, CRLF or CR; `field: value` (one space after the colon is
 * dropped); lines starting with `:` are comments (keep-alives); an empty line dispatches the event, and one
 * without data is dropped. A chunk may end anywhere, even inside a character or between CR and LF.
 */
export class SseReader {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  /** A chunk ended on CR: an LF starting the next one belongs to that line end. */
  private afterCr = false;

  /** Feeds the next chunk; returns the events it completed. */
  push(chunk: Buffer | string): ServerSentEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1);
    this.afterCr = false;
    this.buffer += text;
    const events: ServerSentEvent[] = [];
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      if (end === -1) break;
      // A CR at the very end may be the first half of a CRLF: the line is complete, its LF is skipped later.
      const cr = this.buffer[end] === '\r';
      const crlf = cr && this.buffer[end + 1] === '\n';
      if (cr && !crlf && end === this.buffer.length - 1) this.afterCr = true;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (crlf ? 2 : 1));
      const dispatched = this.line(line);
      if (dispatched) events.push(dispatched);
    }
    return events;
  }

  private line(line: string): ServerSentEvent | undefined {
    if (line === '') {
      const event = this.data.length > 0 ? { event: this.event || 'message', data: this.data.join('\n'), ...(this.id !== undefined && { id: this.id }) } : undefined;
      this.event = '';
      this.data = [];
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return undefined;
  }
}
