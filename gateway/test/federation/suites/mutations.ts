// Mutations across subgraphs: root mutation fields run one after another in the operation's order, even when
// consecutive fields belong to different subgraphs and an earlier one is slow; entity fields of a mutation's
// result are fetched from the other subgraph after it; a failing mutation field does not stop the later ones.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { federation, federationSdl, testError } from '../harness.ts';

/** Both subgraphs write to this one journal: its order is the order the mutations ran in. */
const state = { journal: [] as string[], balances: new Map<string, number>() };
const reset = () => {
  state.journal = [];
  state.balances = new Map([['acc1', 100]]);
};
reset();

const ledger = {
  name: 'ledger',
  typeDefs: federationSdl(
    ['@key'],
    `
type Query {
  account(id: ID!): Account
}
type Mutation {
  "Slow on purpose: a later mutation that did not wait for it would be journaled first."
  deposit(account: ID!, amount: Int!): Account!
  withdraw(account: ID!, amount: Int!): Account
}
type Account @key(fields: "id") {
  id: ID!
  balance: Int!
  "The journal as this subgraph saw it when the account was resolved."
  journal: [String!]!
}
`,
  ),
  resolvers: {
    Query: { account: (_: unknown, { id }: { id: string }) => (state.balances.has(id) ? { id } : null) },
    Mutation: {
      deposit: async (_: unknown, { account, amount }: { account: string; amount: number }) => {
        await sleep(25);
        if (amount <= 0) {
          state.journal.push(`ledger: refused ${amount}`);
          throw testError('a deposit must be positive');
        }
        state.balances.set(account, (state.balances.get(account) ?? 0) + amount);
        state.journal.push(`ledger: deposit ${amount}`);
        return { id: account, journal: [...state.journal] };
      },
      withdraw: (_: unknown, { account, amount }: { account: string; amount: number }) => {
        state.journal.push(`ledger: withdraw ${amount}`);
        const balance = state.balances.get(account) ?? 0;
        if (balance < amount) throw testError(`insufficient funds in ${account}`);
        state.balances.set(account, balance - amount);
        return { id: account, journal: [...state.journal] };
      },
    },
    Account: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      balance: ({ id }: { id: string }) => state.balances.get(id) ?? 0,
      journal: (account: { journal?: string[] }) => account.journal ?? [...state.journal],
    },
  },
};

const audit = {
  name: 'audit',
  typeDefs: federationSdl(
    ['@key'],
    `
type Mutation {
  note(text: String!): Note!
  "Always fails, with a public error."
  reject(reason: String!): Note
}
type Note {
  text: String!
  journal: [String!]!
}
type Account @key(fields: "id") {
  id: ID!
  "How many journal entries exist when this subgraph resolves the account: after the mutation that returned it."
  entriesSoFar: Int!
}
`,
  ),
  resolvers: {
    Mutation: {
      note: (_: unknown, { text }: { text: string }) => {
        state.journal.push(`audit: ${text}`);
        return { text, journal: [...state.journal] };
      },
      reject: (_: unknown, { reason }: { reason: string }) => {
        state.journal.push(`audit: reject`);
        throw testError(reason);
      },
    },
    Account: {
      __resolveReference: ({ id }: { id: string }) => ({ id }),
      entriesSoFar: () => state.journal.length,
    },
  },
};

describe('mutations across subgraphs', () => {
  const graph = federation([ledger, audit]);

  it('runs root mutation fields in order across subgraphs, each one after the previous one finished', async () => {
    await graph.expectAnswer(
      `mutation {
        first: deposit(account: "acc1", amount: 10) { balance journal }
        note(text: "checked") { journal }
        second: deposit(account: "acc1", amount: 5) { balance journal }
        last: note(text: "done") { text journal }
      }`,
      undefined,
      {
        data: {
          first: { balance: 110, journal: ['ledger: deposit 10'] },
          note: { journal: ['ledger: deposit 10', 'audit: checked'] },
          second: { balance: 115, journal: ['ledger: deposit 10', 'audit: checked', 'ledger: deposit 5'] },
          last: { text: 'done', journal: ['ledger: deposit 10', 'audit: checked', 'ledger: deposit 5', 'audit: done'] },
        },
      },
      reset,
    );
  });

  it("fetches a mutation result's entity fields from the other subgraph before the next mutation runs", async () => {
    await graph.expectAnswer(
      `mutation {
        a: deposit(account: "acc1", amount: 1) { entriesSoFar balance }
        n: note(text: "between") { text }
        b: deposit(account: "acc1", amount: 2) { balance entriesSoFar }
      }`,
      undefined,
      { data: { a: { entriesSoFar: 1, balance: 101 }, n: { text: 'between' }, b: { balance: 103, entriesSoFar: 3 } } },
      reset,
    );
  });

  it('goes on with the later mutations after one fails (nullable field), reporting its error at its path', async () => {
    await graph.expectAnswer(
      `mutation {
        w: withdraw(account: "acc1", amount: 500) { balance }
        r: reject(reason: "not today") { text }
        d: deposit(account: "acc1", amount: 7) { balance journal }
      }`,
      undefined,
      {
        data: { w: null, r: null, d: { balance: 107, journal: ['ledger: withdraw 500', 'audit: reject', 'ledger: deposit 7'] } },
        errors: [
          { message: 'insufficient funds in acc1', path: ['w'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'ledger' } },
          { message: 'not today', path: ['r'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'audit' } },
        ],
      },
      reset,
    );
  });

  it('still runs the later mutations after a non-null one failed and nulled data (as Apollo does)', async () => {
    // graphql-js alone would stop the serial execution at the failed non-null field; Apollo's executor runs
    // the whole plan, so the later mutation's side effect happens though its result is not returned.
    await graph.expectAnswer(
      `mutation { bad: deposit(account: "acc1", amount: -1) { balance } n: note(text: "after") { text } }`,
      undefined,
      { data: null, errors: [{ message: 'a deposit must be positive', path: ['bad'], extensions: { code: 'FED_TEST_ERROR', serviceName: 'ledger' } }] },
      reset,
    );
    for (const execution of ['apollo', 'own'] as const) {
      reset();
      const { requests } = await graph.askWith(execution, `mutation { bad: deposit(account: "acc1", amount: -1) { balance } n: note(text: "after") { text } }`);
      expect(requests.map((request) => request.subgraph)).toEqual(['ledger', 'audit']);
      expect(state.journal).toEqual(['ledger: refused -1', 'audit: after']);
    }
  });

  it('sends each mutation field to its subgraph in its own request, in order', async () => {
    for (const execution of ['apollo', 'own'] as const) {
      reset();
      const { requests } = await graph.askWith(execution, `mutation { x: note(text: "1") { text } y: deposit(account: "acc1", amount: 1) { balance } z: note(text: "2") { text } }`);
      expect(requests.map((request) => request.subgraph)).toEqual(['audit', 'ledger', 'audit']);
      expect(state.journal).toEqual(['audit: 1', 'ledger: deposit 1', 'audit: 2']);
    }
  });

  it('does not run a mutation field its condition excludes, and runs those in fragments on the root in order', async () => {
    const operation = `mutation ($dry: Boolean!) {
      n1: note(text: "start") { text }
      ... on Mutation @skip(if: $dry) { d: deposit(account: "acc1", amount: 3) { balance } }
      ...Close
    }
    fragment Close on Mutation { n2: note(text: "end") { journal } }`;
    await graph.expectAnswer(operation, { dry: true }, { data: { n1: { text: 'start' }, n2: { journal: ['audit: start', 'audit: end'] } } }, reset);
    await graph.expectAnswer(
      operation,
      { dry: false },
      { data: { n1: { text: 'start' }, d: { balance: 103 }, n2: { journal: ['audit: start', 'ledger: deposit 3', 'audit: end'] } } },
      reset,
    );
    for (const execution of ['apollo', 'own'] as const) {
      reset();
      expect((await graph.askWith(execution, operation, { dry: true })).requests.map((request) => request.subgraph)).toEqual(['audit', 'audit']);
      expect(state.journal).toEqual(['audit: start', 'audit: end']);
    }
  });
});
