import { describe, expect, it } from 'vitest';
import { preparedOn } from '../src/db/prepared.ts';

describe('preparedOn', () => {
  it('prepares on first use, once, on the database itself when it has no replicas', () => {
    const db = { name: 'primary' };
    const prepared: string[] = [];
    const statement = preparedOn(db, (target) => {
      prepared.push(target.name);
      return `statement on ${target.name}`;
    });
    expect(prepared).toEqual([]);
    expect(statement()).toBe('statement on primary');
    expect(statement()).toBe('statement on primary');
    expect(prepared).toEqual(['primary']);
  });

  it('on a reader over replicas (drizzle withReplicas), prepares once per replica and spreads executions over them', () => {
    const replicas = [{ name: 'replica1' }, { name: 'replica2' }];
    const reader = { name: 'primary', $replicas: replicas };
    const prepared: string[] = [];
    const statement = preparedOn(reader, (target) => {
      prepared.push(target.name);
      return target.name;
    });
    const used = new Set(Array.from({ length: 200 }, () => statement()));
    expect(prepared).toEqual(['replica1', 'replica2']);
    // Never the primary: reads stay on the replicas, as drizzle sends them.
    expect([...used].sort()).toEqual(['replica1', 'replica2']);
  });
});
