/** A subgraph's answer, read once, so that every request that waited for it gets a Response of its own. */
interface Buffered {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: string;
}

const buffer = async (response: Response): Promise<Buffered> => ({
  status: response.status,
  statusText: response.statusText,
  headers: [...response.headers],
  body: await response.text(),
});

/**
 * Identical subgraph fetches in flight at the same moment share one: under load, many clients asking the same
 * thing cost the subgraph one request instead of one each. Each caller still parses its own copy of the answer,
 * so no two requests ever share (and merge into) the same objects. The caller decides what may be shared: the
 * key must hold everything that makes two answers differ (the subgraph, the exact body and the signed viewer),
 * and only reads may share, never a mutation's fetches.
 */
export function createInFlightDedupe() {
  const inFlight = new Map<string, Promise<Buffered>>();
  return {
    async fetch(key: string, send: () => Promise<Response>, onShared: () => void): Promise<Response> {
      let pending = inFlight.get(key);
      if (pending) {
        onShared();
      } else {
        pending = send().then(buffer);
        inFlight.set(key, pending);
        const settled = pending;
        // Only while it is in flight: a later identical fetch must see the subgraph's newer state.
        void settled.finally(() => inFlight.get(key) === settled && inFlight.delete(key)).catch(() => {});
      }
      const { body, ...init } = await pending;
      // A Response with a null-body status (204, 304) refuses even an empty string.
      return new Response(body === '' ? null : body, init);
    },
    get size() {
      return inFlight.size;
    },
  };
}
