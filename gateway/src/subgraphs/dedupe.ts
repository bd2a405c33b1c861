/**
 * Counts the writes this gateway has seen: every fetch of a mutation it made, and every purge its response
 * cache heard of (writes through other replicas). A read in flight since before a write may answer with what
 * was there before it, so nothing joins a fetch sent in an earlier generation.
 */
export interface WriteClock {
  generation(): number;
  wrote(): void;
}

export function createWriteClock(): WriteClock {
  let generation = 0;
  return {
    generation: () => generation,
    wrote: () => {
      generation += 1;
    },
  };
}

/**
 * Identical subgraph fetches in flight at the same moment share one: under load, many clients asking the same
 * thing cost the subgraph one request instead of one each. What they share is an answer that parses a fresh copy
 * for each caller, so no two requests ever merge into the same objects. The caller decides what may be shared:
 * the key must hold everything that makes two answers differ (the exact body and the signed viewer), only reads
 * may share, never a mutation's fetches, and only within one write generation.
 */
export function createInFlightDedupe<T>() {
  const inFlight = new Map<string, { answer: Promise<T>; generation: number }>();
  return {
    fetch(key: string, generation: number, send: () => Promise<T>, onShared: () => void): Promise<T> {
      const pending = inFlight.get(key);
      if (pending?.generation === generation) {
        onShared();
        return pending.answer;
      }
      const sent = { answer: send(), generation };
      inFlight.set(key, sent);
      // Only while it is in flight: a later identical fetch must see the subgraph's newer state.
      const forget = () => {
        if (inFlight.get(key) === sent) inFlight.delete(key);
      };
      sent.answer.then(forget, forget);
      return sent.answer;
    },
  };
}
