// The live-query scheduler on its own, with the in-memory bus (the embedded default's) and a stand-in for the
// HTTP path whose answers and tags the test controls: what each client receives when commits come before, during
// and after runs, when runs fail, and when clients come and go. End to end through real subgraphs, Postgres and
// Redis: infra/stack/test/live-queries.test.ts.
import { HeaderMap } from '@apollo/server';
import { createLogger, DOMAIN_EVENTS_CHANNEL, MemoryPubSub, type DomainEvent } from '@fed/platform';
import type { FormattedExecutionResult } from 'graphql';
import { afterEach, describe, expect, it } from 'vitest';
import { createLiveQueries, type LiveAnswers, type LiveRun } from '../../src/live/live-queries.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the stand-in HTTP path answers: the state (a name), the tags it read, and whether its next run fails. */
function world() {
  const state = { name: 'Ada', failing: false, forbidden: false, tags: new Set(['users/User:1']) };
  let runs = 0;
  /** Resolved when a run starts, to let a test act while that run is reading. */
  let onRun: (() => Promise<void>) | undefined;
  const run = async (): Promise<LiveRun> => {
    runs += 1;
    const read = state.name;
    if (onRun) {
      const hook = onRun;
      onRun = undefined;
      await hook();
    }
    const body = state.forbidden
      ? { data: { user: null }, errors: [{ message: 'Only the user it belongs to or an admin may read it', extensions: { code: 'FORBIDDEN' } }] }
      : state.failing
      ? { data: { user: null }, errors: [{ message: 'users is unavailable', extensions: { code: 'SUBGRAPH_UNAVAILABLE' } }] }
      : { data: { user: { name: read, bio: 'A long biography that does not change. '.repeat(4) } } };
    return {
      response: { status: 200, headers: new HeaderMap(), body: { kind: 'complete', string: JSON.stringify(body) } },
      // A failed fetch tags nothing of what it did not read.
      tags: state.failing ? new Set(['users/Query.user']) : new Set(state.tags),
    };
  };
  return { state, run, runs: () => runs, during: (hook: () => Promise<void>) => (onRun = hook) };
}

/** A commit of `changed` (`User:1`, or `orders/Order:9` for another subgraph's) announced on the bus. */
const commit = (bus: MemoryPubSub, ...changed: string[]) => {
  const [source, change] = changed[0]!.includes('/') ? (changed[0]!.split('/') as [string, string]) : ['users', changed[0]!];
  const event: DomainEvent = { id: `${Math.random()}`, kind: 'USER_UPDATED', userId: '1', occurredAt: new Date().toISOString(), source, changed: [change, ...changed.slice(1)] };
  return bus.publish(DOMAIN_EVENTS_CHANNEL, event);
};

/** Every answer a client gets, as it comes. */
function collect(answers: LiveAnswers) {
  const got: FormattedExecutionResult[] = [];
  let done = false;
  void (async () => {
    for await (const answer of answers) got.push(answer);
    done = true;
  })();
  return { got, done: () => done, names: () => got.map((answer) => (answer.data?.user as { name?: string } | null)?.name ?? null) };
}

async function until(check: () => boolean, what: string) {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('live queries (scheduler)', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  const setUp = async (throttleMs = 20) => {
    const bus = new MemoryPubSub();
    const w = world();
    const live = createLiveQueries({ events: bus, throttleMs, run: w.run, logger: createLogger({ name: 'test', level: 'silent' }) });
    await live.start();
    stops.push(() => live.stop());
    const open = async (format?: 'whole' | 'json-patch') => {
      const opening = await live.open({ query: '{ user(id: "1") { name } }' }, { userId: '1', role: 'user' }, format);
      if (!('answers' in opening)) throw new Error('refused');
      return collect(opening.answers);
    };
    return { bus, w, live, open, runs: () => w.runs() };
  };

  it('runs again after a commit that names what the answer read, and not after one that does not', async () => {
    const { bus, w, open } = await setUp();
    const client = await open();
    await until(() => client.got.length === 1, 'the first answer');
    await commit(bus, 'User:2');
    await sleep(100);
    expect(w.runs()).toBe(1);
    w.state.name = 'Grace';
    await commit(bus, 'User:1');
    await until(() => client.names().includes('Grace'), 'the new answer');
    expect(client.names()).toEqual(['Ada', 'Grace']);
  });

  it('does not lose a commit heard while the first run was reading', async () => {
    const { bus, w, open } = await setUp();
    // The first run reads the old name; the write commits and is announced before that run is over.
    w.during(async () => {
      w.state.name = 'Written Meanwhile';
      await commit(bus, 'User:1');
    });
    const client = await open();
    await until(() => client.names().includes('Written Meanwhile'), 'the answer after the commit');
    expect(client.names()).toEqual(['Ada', 'Written Meanwhile']);
  });

  it('does not lose a commit heard while a later run was reading, though it names what only that run read', async () => {
    const { bus, w, open } = await setUp();
    const client = await open();
    await until(() => client.got.length === 1, 'the first answer');
    // The next run reads a new entity (a list that gained an order); a commit to it comes while it reads.
    w.state.tags = new Set(['users/User:1', 'orders/Order:9']);
    w.during(async () => {
      w.state.name = 'Order 9 changed';
      await commit(bus, 'orders/Order:9');
    });
    await commit(bus, 'User:1');
    await until(() => client.names().includes('Order 9 changed'), 'the answer after the commit during the run');
  });

  it('keeps what it read before when a run fails, retries it, and follows commits again once it works', async () => {
    const { bus, w, live, open } = await setUp();
    const client = await open();
    await until(() => client.got.length === 1, 'the first answer');
    w.state.failing = true;
    await commit(bus, 'User:1');
    await until(() => client.got.length === 2, 'the failed answer');
    expect(client.got[1]?.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE');
    // The retry waits its backoff (1 s first), not the throttle: a subgraph that is down is not hammered.
    const failedRuns = w.runs();
    await sleep(500);
    expect(w.runs()).toBe(failedRuns);
    // The subgraph is back: the retry (after 1 s) answers again, without any commit.
    w.state.failing = false;
    w.state.name = 'Back';
    await until(() => client.names().at(-1) === 'Back', 'the retried answer');
    expect(live.stats.runs.retry).toBeGreaterThan(0);
    // Commits to what it read keep reaching it.
    w.state.name = 'After';
    await commit(bus, 'User:1');
    await until(() => client.names().at(-1) === 'After', 'the answer after recovery');
  });

  it('ends a live query whose viewer lost access: the FORBIDDEN answer, then nothing more', async () => {
    const { bus, w, live, open } = await setUp();
    const client = await open();
    await until(() => client.got.length === 1, 'the first answer');
    w.state.forbidden = true;
    await commit(bus, 'User:1');
    await until(() => client.done(), 'the end');
    expect(client.got.at(-1)?.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(live.stats.open).toBe(0);
    const runs = w.runs();
    await commit(bus, 'User:1');
    await sleep(100);
    expect(w.runs()).toBe(runs);
  });

  it('coalesces a burst into a few runs, ending on the newest state', async () => {
    const { bus, w, open } = await setUp(50);
    const client = await open();
    await until(() => client.got.length === 1, 'the first answer');
    for (let n = 1; n <= 50; n += 1) {
      w.state.name = `Burst ${n}`;
      await commit(bus, 'User:1');
    }
    await until(() => client.names().at(-1) === 'Burst 50', 'the newest answer');
    expect(w.runs()).toBeLessThan(10);
  });

  it('shares one execution between identical opens, ends it with its last client, and ends clients when it stops', async () => {
    const { bus, w, live, open } = await setUp();
    const [one, two] = await Promise.all([open(), open()]);
    await until(() => one.got.length === 1 && two.got.length === 1, 'both first answers');
    expect(w.runs()).toBe(1);
    expect(live.stats.open).toBe(2);
    w.state.name = 'Both';
    await commit(bus, 'User:1');
    await until(() => one.names().at(-1) === 'Both' && two.names().at(-1) === 'Both', 'the answer to both');
    expect(w.runs()).toBe(2);
    await live.stop();
    await until(() => one.done() && two.done(), 'both ended');
    expect(live.stats.open).toBe(0);
  });

  it('lets a client leave before it read anything: its execution goes with it', async () => {
    const { bus, w, live } = await setUp();
    const opening = await live.open({ query: '{ user(id: "1") { name } }' }, null);
    if (!('answers' in opening)) throw new Error('refused');
    await opening.answers.return(undefined);
    expect(live.stats.open).toBe(0);
    await commit(bus, 'User:1');
    await sleep(100);
    expect(w.runs()).toBe(1);
  });

  it('sends patches that carry only the change, and a whole replace to a client that fell behind', async () => {
    const { bus, w, live, open } = await setUp(0);
    const client = await open('json-patch');
    await until(() => client.got.length === 1, 'the first answer');
    expect(client.got[0]).toMatchObject({ data: { user: { name: 'Ada' } }, revision: 1 });
    w.state.name = 'Grace';
    await commit(bus, 'User:1');
    await until(() => client.got.length === 2, 'the patch');
    expect(client.got[1]).toEqual({ patch: [{ op: 'replace', path: '/user/name', value: 'Grace' }], revision: 2 });

    // A client that reads nothing while 20 answers come: past 16 waiting, it gets the newest whole.
    const opening = await live.open({ query: '{ user(id: "1") { name } }' }, { userId: '2', role: 'user' }, 'json-patch');
    if (!('answers' in opening)) throw new Error('refused');
    const first = await opening.answers.next();
    expect(first.value).toMatchObject({ revision: 1 });
    for (let n = 1; n <= 20; n += 1) {
      const runs = w.runs();
      w.state.name = `Unread ${n}`;
      await commit(bus, 'User:1');
      await until(() => w.runs() >= runs + 2, `the runs for write ${n}`);
    }
    // What it gets next: all of data at the revision it resumes from, then the patches after it, to the newest.
    const resync = (await opening.answers.next()).value as { patch: { op: string; path: string; value: { user: { name: string } } }[]; revision: number };
    expect(resync.patch).toEqual([{ op: 'replace', path: '', value: { user: { name: expect.stringMatching(/^Unread \d+$/), bio: expect.any(String) } } }]);
    let name = resync.patch[0]!.value.user.name;
    let revision = resync.revision;
    while (revision < 21) {
      const patch = (await opening.answers.next()).value as { patch: { path: string; value: string }[]; revision: number };
      expect(patch.revision).toBe(revision + 1);
      expect(patch.patch).toEqual([{ op: 'replace', path: '/user/name', value: expect.any(String) }]);
      name = patch.patch[0]!.value;
      revision = patch.revision;
    }
    expect(name).toBe('Unread 20');
    await opening.answers.return(undefined);
  });
});
