// The bundled GraphiQL's reader of multipart/mixed answers (@defer's parts, as the gateway and Apollo Server
// write them): runs in the browser as is, before explorer.js, which takes it from the global below.
'use strict';

(function () {
  /**
   * The parts of a multipart/mixed answer, each parsed, as they arrive, whatever the network's chunks. (The
   * reader inside GraphiQL's bundle, meros, decodes each chunk on its own, so a character split between two
   * chunks comes out garbled.) Parts are JSON, which cannot hold a raw line break, so the delimiter never
   * occurs inside one.
   */
  async function* partsOf(response, signal) {
    const boundary = /boundary="?([^";]+)"?/i.exec(response.headers.get('content-type') ?? '')?.[1] ?? '-';
    const delimiter = `\r\n--${boundary}`;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    // The first delimiter may open the body with no line break before it.
    let buffer = '\r\n';
    let opened = false;
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          // Stopped from the toolbar: what arrived stays on screen.
          if (signal.aborted) return;
          throw error;
        }
        buffer += decoder.decode(chunk.value, { stream: !chunk.done });
        for (;;) {
          // After the closing delimiter (`--` right after one) nothing more comes.
          if (opened && buffer.startsWith('--')) return;
          const at = buffer.indexOf(delimiter);
          if (at === -1) break;
          const segment = buffer.slice(0, at);
          buffer = buffer.slice(at + delimiter.length);
          // Before the first delimiter is the preamble, not a part.
          if (opened) {
            // The rest of the delimiter line, the part's headers, an empty line, then the JSON.
            const headersEnd = segment.indexOf('\r\n\r\n');
            const body = headersEnd === -1 ? segment : segment.slice(headersEnd + 4);
            let payload;
            try {
              payload = JSON.parse(body);
            } catch {
              throw new Error(`A part of the multipart answer is not JSON: ${body.slice(0, 200)}`);
            }
            yield payload;
          }
          opened = true;
        }
        if (chunk.done) {
          if (buffer.trim() !== '') throw new Error('The multipart answer ended in the middle of a part');
          return;
        }
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  globalThis.explorerMultipart = { partsOf };
})();
