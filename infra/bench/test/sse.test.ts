import { describe, expect, it } from 'vitest';
import { SseReader } from '../src/sse.ts';

describe('SseReader', () => {
  it('reads graphql-sse’s events: next with its JSON data, then complete with empty data', () => {
    const reader = new SseReader();
    const events = reader.push('event: next\ndata: {"data":{"userEvents":{"kind":"USER_UPDATED"}}}\n\nevent: complete\ndata:\n\n');
    expect(events).toEqual([
      { event: 'next', data: '{"data":{"userEvents":{"kind":"USER_UPDATED"}}}' },
      { event: 'complete', data: '' },
    ]);
  });

  it('dispatches an event only at the empty line after it, however the stream is chunked (split lines, split characters)', () => {
    const text = 'id: 17-0\nevent: next\ndata: {"name":"Åda ✓"}\n\n';
    const bytes = Buffer.from(text);
    const reader = new SseReader();
    const seen: { at: number; data: string; id?: string }[] = [];
    for (let i = 0; i < bytes.length; i += 1) for (const event of reader.push(bytes.subarray(i, i + 1))) seen.push({ at: i, data: event.data, id: event.id });
    expect(seen).toEqual([{ at: bytes.length - 1, data: '{"name":"Åda ✓"}', id: '17-0' }]);
  });

  it('skips comments (keep-alives), joins data lines with LF, takes CRLF and CR line ends (also split between chunks), and names unnamed events message', () => {
    const reader = new SseReader();
    expect(reader.push(':\n\n: server shutting down\n\n')).toEqual([]);
    expect(reader.push('data: a\r\ndata:b\r')).toEqual([]);
    // The LF completes the CRLF split between chunks (not an empty line); the CR after it is the empty line.
    expect(reader.push('\n\r')).toEqual([{ event: 'message', data: 'a\nb' }]);
    // This LF belongs to that CR, not a second empty line.
    expect(reader.push('\nevent: next\rdata:  two spaces\r\r')).toEqual([{ event: 'next', data: ' two spaces' }]);
  });

  it('drops an event without data, and fields it does not know', () => {
    const reader = new SseReader();
    expect(reader.push('event: next\nretry: 100\n\nfoo: bar\ndata: x\n\n')).toEqual([{ event: 'message', data: 'x' }]);
  });
});
