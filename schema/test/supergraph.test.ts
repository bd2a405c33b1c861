import { readFileSync } from 'node:fs';
import { buildSchema, isNonNullType, isObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { composeSupergraph, SUPERGRAPH_PATH } from '../src/index.ts';

describe('committed supergraph', () => {
  it('is exactly what composing the current subgraph SDL produces (run `npm run compose` if not)', () => {
    const committed = readFileSync(SUPERGRAPH_PATH, 'utf8');
    expect(committed).toBe(composeSupergraph().supergraphSdl);
  });

  it('exposes the cross-subgraph and private fields as nullable, so a subgraph down or a denial degrades a response', () => {
    const schema = buildSchema(composeSupergraph().supergraphSdl, { assumeValidSDL: true });
    const fieldType = (type: string, field: string) => {
      const object = schema.getType(type);
      if (!isObjectType(object)) throw new Error(`${type} is not an object type`);
      return object.getFields()[field]?.type;
    };
    // The fields authorization may refuse must be nullable too, so a FORBIDDEN leaves the rest of a response intact.
    const fields = [['User', 'orders'], ['User', 'orderCount'], ['User', 'totalSpentCents'], ['User', 'email'], ['Order', 'user'], ['Query', 'order'], ['Query', 'orders'], ['Query', 'me']] as const;
    for (const [type, field] of fields) {
      expect(fieldType(type, field), `${type}.${field}`).toBeDefined();
      expect(isNonNullType(fieldType(type, field)), `${type}.${field} must be nullable`).toBe(false);
    }
  });
});
