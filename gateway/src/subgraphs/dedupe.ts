/**
 * Identical subgraph fetches in flight at the same moment share one: under load, many clients asking the same
 * thing cost the subgraph one request instead of one each. What they share is an answer that parses a fresh copy
 * for each caller, so no two requests ever merge into the same objects. The caller decides what may be shared:
 * the key must hold everything that makes two answers differ (the exact body and the signed viewer), and only
 * reads may share, never a mutation's fetches.
 */
export function createInFlightDedupe<T>() {
  const inFlight = new Map<string, Promise<T>>();
  return {
    fetch(key: string, send: () => Promise<T>, onShared: () => void): Promise<T> {
      const pending = inFlight.get(key);
      if (pending) {
        onShared();
        return pending;
      }
      const sent = send();
      inFlight.set(key, sent);
      // Only while it is in flight: a later identical fetch must see the subgraph's newer state.
      const forget = () => {
        if (inFlight.get(key) === sent) inFlight.delete(key);
      };
      sent.then(forget, forget);
      return sent;
    },
    get size() {
      return inFlight.size;
    },
  };
}
