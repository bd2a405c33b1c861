import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateResolverTypes, RESOLVER_TYPES } from '../src/codegen.ts';

describe('committed resolver types', () => {
  it.each(Object.keys(RESOLVER_TYPES) as (keyof typeof RESOLVER_TYPES)[])(
    '%s: src/generated/resolvers.ts is exactly what its schema.graphql generates (run `npm run codegen` if not)',
    async (name) => {
      expect(readFileSync(RESOLVER_TYPES[name].output, 'utf8')).toBe(await generateResolverTypes(name));
    },
  );
});
