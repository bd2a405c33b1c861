import type { DocumentNode } from 'graphql';

export interface DocumentCacheLimits {
  /**
   * Query text the cache may hold in all, in UTF-8 bytes. A parsed document costs a multiple of its text (and,
   * with V8's sliced strings, keeps the text itself alive), so the text is what is counted.
   */
  maxBytes: number;
  /** Longer documents are parsed and validated each time, never kept: one large string must not stay resident. */
  maxDocumentBytes: number;
  maxEntries: number;
}

/** Thousands of clients send the same few short documents; anything else is not worth keeping. */
export const DEFAULT_DOCUMENT_CACHE: DocumentCacheLimits = { maxBytes: 1024 * 1024, maxDocumentBytes: 16 * 1024, maxEntries: 1_000 };

export interface DocumentCacheStats {
  entries: number;
  /** The query text held now, as counted against maxBytes. */
  bytes: number;
  /** Documents refused for their size since start. */
  tooLarge: number;
}

/**
 * Parsed, validated subscription documents by hash, least recently used first out, bounded by entries and by
 * bytes. Anonymous clients fill it, so its bound is the most it can ever cost, whatever they send.
 */
export function createDocumentCache(limits: DocumentCacheLimits) {
  const entries = new Map<string, { document: DocumentNode; bytes: number }>();
  const stats: DocumentCacheStats = { entries: 0, bytes: 0, tooLarge: 0 };
  const evictOldest = () => {
    const [key, entry] = entries.entries().next().value ?? [];
    if (key === undefined || !entry) return;
    entries.delete(key);
    stats.bytes -= entry.bytes;
  };
  return {
    get(key: string): DocumentNode | undefined {
      const entry = entries.get(key);
      if (!entry) return undefined;
      // Map order is insertion order: re-inserting makes it the most recently used.
      entries.delete(key);
      entries.set(key, entry);
      return entry.document;
    },
    /** Keeps a document that passed validation, unless it is too large to be worth its memory. */
    set(key: string, source: string, document: DocumentNode): void {
      if (entries.has(key)) return;
      const bytes = Buffer.byteLength(source, 'utf8');
      if (bytes > limits.maxDocumentBytes || bytes > limits.maxBytes) {
        stats.tooLarge += 1;
        return;
      }
      while (entries.size > 0 && (entries.size >= limits.maxEntries || stats.bytes + bytes > limits.maxBytes)) evictOldest();
      entries.set(key, { document, bytes });
      stats.bytes += bytes;
    },
    clear(): void {
      entries.clear();
      stats.bytes = 0;
    },
    stats: (): DocumentCacheStats => ({ ...stats, entries: entries.size }),
  };
}

export type DocumentCache = ReturnType<typeof createDocumentCache>;
