// @context / @fromContext (Federation 2.8), run by our executor: a field's argument comes from an ancestor in the
// answer, which may have come from another subgraph. @apollo/gateway refuses such a supergraph. Two real
// subgraphs on loopback; the `company` subgraph's resolvers say which argument they were given.
import type { IncomingMessage } from 'node:http';
import { isProbeRequest } from '@fed/platform';
import { graphql } from '@fed/platform/testing';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startComposedGateway } from '../fixtures/composed-gateway.ts';
import { serveSubgraph } from '../fixtures/keyed-entities-graph.ts';

const LINK = (imports: string[]) => `extend schema @link(url: "https://specs.apollo.dev/federation/v2.8", import: ${JSON.stringify(imports)})`;
/** Sets the context (a company's currency) and reads it in Employee.salary. */
const COMPANY_SDL = `${LINK(['@key', '@context', '@fromContext'])}
type Query { companies: [Company!]! company(id: ID!): Company }
type Company @key(fields: "id") @context(name: "company") {
  id: ID!
  currency: String
  staff: [Employee!]!
}
type Employee @key(fields: "id") {
  id: ID!
  salary(currency: String @fromContext(field: "$company { currency }")): String
}
`;
/** Owns the employees' names: the plan reaches salary from here, through _entities. */
const PEOPLE_SDL = `${LINK(['@key'])}
type Employee @key(fields: "id") {
  id: ID!
  name: String!
}
`;

describe('@context and @fromContext', () => {
  const stops: (() => Promise<unknown>)[] = [];
  const entityCalls: number[] = [];
  let url: string;

  beforeAll(async () => {
    const companies = [
      { id: 'c1', currency: 'EUR', staff: [{ id: 'e1' }, { id: 'e2' }] },
      { id: 'c2', currency: 'USD', staff: [{ id: 'e3' }] },
      { id: 'c3', currency: 'EUR', staff: [{ id: 'e4' }] },
      // No currency: its employees' fetch has no value for the variable, and must not borrow another's.
      { id: 'c4', currency: null, staff: [{ id: 'e5' }] },
      { id: 'c5', currency: 'GBP', staff: [{ id: 'broken' }] },
    ];
    const company = await serveSubgraph('company', COMPANY_SDL, {
      Query: { companies: () => companies, company: (_: unknown, { id }: { id: string }) => companies.find((company) => company.id === id) },
      Employee: {
        __resolveReference: ({ id }: { id: string }) => ({ id }),
        salary: ({ id }: { id: string }, { currency }: { currency?: string }) => {
          if (id === 'broken') throw new GraphQLError('No salary on record');
          return `${id} in ${currency ?? 'nothing'}`;
        },
      },
    });
    company.app.httpServer.on('request', (req: IncomingMessage) => isProbeRequest(req.headers['x-request-id']) || entityCalls.push(Date.now()));
    const people = await serveSubgraph('people', PEOPLE_SDL, { Employee: { __resolveReference: ({ id }: { id: string }) => ({ id, name: `Employee ${id}` }) } });
    stops.push(() => company.app.stop(), () => people.app.stop());
    const started = await startComposedGateway([company, people]);
    stops.push(() => started.gateway.stop());
    url = started.url;
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it("passes each entity its own ancestor's value, one fetch per distinct value, errors at their own entity", async () => {
    entityCalls.length = 0;
    const response = await graphql(url, '{ companies { id staff { name salary } } }');
    expect(response.data).toEqual({
      companies: [
        { id: 'c1', staff: [{ name: 'Employee e1', salary: 'e1 in EUR' }, { name: 'Employee e2', salary: 'e2 in EUR' }] },
        { id: 'c2', staff: [{ name: 'Employee e3', salary: 'e3 in USD' }] },
        { id: 'c3', staff: [{ name: 'Employee e4', salary: 'e4 in EUR' }] },
        { id: 'c4', staff: [{ name: 'Employee e5', salary: 'e5 in nothing' }] },
        { id: 'c5', staff: [{ name: 'Employee broken', salary: null }] },
      ],
    });
    expect(response.errors?.map((error) => error.path)).toEqual([['companies', 4, 'staff', 0, 'salary']]);
    // The root fetch, then one _entities fetch each for EUR (three employees), USD, no currency and GBP.
    expect(entityCalls).toHaveLength(5);
  });

  it('an ancestor reached through an alias still gives the value', async () => {
    const response = await graphql(url, '{ firms: companies { staff { pay: salary } } }');
    expect(response.data?.firms).toEqual([
      { staff: [{ pay: 'e1 in EUR' }, { pay: 'e2 in EUR' }] },
      { staff: [{ pay: 'e3 in USD' }] },
      { staff: [{ pay: 'e4 in EUR' }] },
      { staff: [{ pay: 'e5 in nothing' }] },
      { staff: [{ pay: null }] },
    ]);
  });

  it('two fetches of one plan, one with a context value and one without, each keep their own', async () => {
    const response = await graphql(url, '{ paid: company(id: "c1") { staff { salary } } unpaid: company(id: "c4") { staff { salary } } }');
    expect(response.data).toEqual({ paid: { staff: [{ salary: 'e1 in EUR' }, { salary: 'e2 in EUR' }] }, unpaid: { staff: [{ salary: 'e5 in nothing' }] } });
  });
});
