export interface OperationCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  evictions: number;
}

/**
 * Least recently used first out, bounded by the entries' estimated bytes rather than their count: one
 * operation's plan can weigh a thousand times another's.
 */
export function createOperationCache<T>(maxBytes: number) {
  // A Map iterates in insertion order: re-inserting on a hit keeps the least recently used first.
  const entries = new Map<string, { value: T; bytes: number }>();
  let bytes = 0;
  let evictions = 0;
  return {
    get(key: string): T | undefined {
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      entries.set(key, entry);
      return entry.value;
    },
    set(key: string, value: T, size: number) {
      const previous = entries.get(key);
      if (previous) {
        bytes -= previous.bytes;
        entries.delete(key);
      }
      // An entry larger than the whole cache is used once and not kept.
      if (size > maxBytes) return;
      entries.set(key, { value, bytes: size });
      bytes += size;
      for (const [oldest, entry] of entries) {
        if (bytes <= maxBytes) break;
        entries.delete(oldest);
        bytes -= entry.bytes;
        evictions++;
      }
    },
    stats: (): OperationCacheStats => ({ entries: entries.size, bytes, maxBytes, evictions }),
  };
}
