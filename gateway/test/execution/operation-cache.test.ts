import { describe, expect, it } from 'vitest';
import { createOperationCache } from '../../src/execution/operation-cache.ts';

describe('the prepared-operation cache', () => {
  it('stays within its bytes, dropping the least recently used operations first', () => {
    const cache = createOperationCache<string>(1_000);
    cache.set('a', 'plan a', 400);
    cache.set('b', 'plan b', 400);
    // Reading `a` makes `b` the least recently used.
    expect(cache.get('a')).toBe('plan a');
    cache.set('c', 'plan c', 400);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('plan a');
    expect(cache.get('c')).toBe('plan c');
    expect(cache.stats()).toEqual({ entries: 2, bytes: 800, maxBytes: 1_000, evictions: 1 });
  });

  it('keeps nothing larger than itself, and counts a replaced entry once', () => {
    const cache = createOperationCache<string>(1_000);
    cache.set('huge', 'plan', 5_000);
    expect(cache.get('huge')).toBeUndefined();
    cache.set('a', 'first', 300);
    cache.set('a', 'second', 500);
    expect(cache.get('a')).toBe('second');
    expect(cache.stats().bytes).toBe(500);
  });
});
