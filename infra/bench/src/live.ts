import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { cpuMs, percentile } from '@fed/platform/testing';
import { rssMb, type BenchProcess } from './processes.ts';
import { sleep, until } from './wait.ts';

// One user's name: every write renames a user, and each answer says which write it shows.
const LIVE_QUERY = 'query LiveUser($id: ID!) @live { user(id: $id) { id name } }';

export interface LiveLatency {
  liveQueries: number;
  users: number;
  /** Answers timed: each write reaches the live queries of its user. */
  deliveries: number;
  /** The write sent → the client has the new answer (an upper bound of commit → client). */
  p50Ms: number;
  p99Ms: number;
}

export interface LiveMemory {
  liveQueries: number;
  /** The gateway's RSS growth with every live query running and idle, per live query (its socket included). */
  kbPerLiveQuery: number;
}

export interface LiveSteadyLoad {
  liveQueries: number;
  writesPerSecond: number;
  users: number;
  seconds: number;
  /** The gateway's CPU over the run, in cores (1 = one core busy the whole time). */
  gatewayCores: number;
  /** Answers the live queries got during the run (each a run whose answer changed). */
  updates: number;
}

// A hang detector, not a speed bound: thousands of handshakes on a busy 2-core machine take a while.
const BOUND_MS = 300_000;

interface Watcher {
  userId: string;
  /** Names of the user in the answers so far, each with when it arrived. */
  names: { name: string; at: number }[];
  failure?: string;
  client: Client;
}

/** `count` live queries, each on a socket of its own, watching `userOf(i)`; resolved once each has its first answer. */
async function openLiveQueries(gateway: BenchProcess, authorization: string, count: number, userOf: (index: number) => string): Promise<Watcher[]> {
  const watchers: Watcher[] = [];
  for (let index = 0; index < count; index += 1) {
    const client = createClient({ url: gateway.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, connectionParams: { authorization } });
    const watcher: Watcher = { userId: userOf(index), names: [], client };
    client.subscribe<{ user: { name: string } | null }>(
      { query: LIVE_QUERY, variables: { id: watcher.userId } },
      {
        next: (result) => {
          if (result.errors?.length) watcher.failure = JSON.stringify(result.errors);
          const name = result.data?.user?.name;
          if (name !== undefined) watcher.names.push({ name, at: Date.now() });
        },
        error: (error) => (watcher.failure = error instanceof Error ? error.message : JSON.stringify(error)),
        complete: () => (watcher.failure ??= 'the live query completed'),
      },
    );
    watchers.push(watcher);
    // Paced, as the fan-out's handshakes: each batch has its first answers before the next opens.
    if (index % 200 === 199 || index === count - 1) {
      await until(() => watchers.every((each) => each.names.length > 0 || each.failure !== undefined), 'the first answers', BOUND_MS);
      const failed = watchers.find((each) => each.failure !== undefined);
      if (failed) throw new Error(`a live query failed: ${failed.failure}`);
    }
  }
  return watchers;
}

const closeAll = (watchers: Watcher[]) => Promise.all(watchers.map((watcher) => watcher.client.dispose()));

async function rename(gateway: BenchProcess, authorization: string, userId: string, name: string) {
  const response = await fetch(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ query: 'mutation ($id: ID!, $name: String!) { updateUser(id: $id, input: { name: $name }) { id } }', variables: { id: userId, name } }),
  });
  if (!response.ok) throw new Error(`the write answered ${response.status}`);
  const body = (await response.json()) as { errors?: unknown[] };
  if (body.errors?.length) throw new Error(`the write failed: ${JSON.stringify(body.errors)}`);
}

/**
 * `users × perUser` live queries (one socket each: the same viewer's identical queries share one execution, as
 * they do in production), then `writes` renames, one user at a time, 300 ms apart: each write timed from its
 * sending to the moment each of that user's live queries has the new name.
 */
export async function liveUpdateLatency(gateway: BenchProcess, authorization: string, options: { users: number; perUser: number; writes: number }, log: (line: string) => void): Promise<LiveLatency> {
  const count = options.users * options.perUser;
  const watchers = await openLiveQueries(gateway, authorization, count, (index) => String((index % options.users) + 1));
  log(`  ${count} live queries over ${options.users} users answered`);
  const latencies: number[] = [];
  try {
    for (let write = 1; write <= options.writes; write += 1) {
      const userId = String(((write * 37) % options.users) + 1);
      const name = `Live write ${write}`;
      const watching = watchers.filter((watcher) => watcher.userId === userId);
      const sentAt = Date.now();
      await rename(gateway, authorization, userId, name);
      await until(() => watching.every((watcher) => watcher.names.some((entry) => entry.name === name)), `write ${write} at every live query of user ${userId}`, BOUND_MS);
      for (const watcher of watching) latencies.push(watcher.names.find((entry) => entry.name === name)!.at - sentAt);
      await sleep(300);
    }
  } finally {
    await closeAll(watchers);
  }
  latencies.sort((a, b) => a - b);
  return { liveQueries: count, users: options.users, deliveries: latencies.length, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

/** `count` live queries of distinct users (no sharing: the most a live query can cost), idle: RSS growth per query. */
export async function liveIdleMemory(gateway: BenchProcess, authorization: string, count: number, log: (line: string) => void): Promise<LiveMemory> {
  await sleep(500);
  const before = rssMb(gateway.pid);
  const watchers = await openLiveQueries(gateway, authorization, count, (index) => String(index + 1));
  try {
    await sleep(1_000);
    const idle = rssMb(gateway.pid);
    log(`  ${count} idle live queries; gateway RSS ${before} → ${idle} MB`);
    return { liveQueries: count, kbPerLiveQuery: Number((((idle - before) * 1024) / count).toFixed(1)) };
  } finally {
    await closeAll(watchers);
  }
}

/**
 * `liveQueries` live queries of users 1…liveQueries while `writesPerSecond` renames of users picked at random
 * among `users` go through the gateway for `seconds`: the gateway's CPU in cores, the writes' included.
 */
export async function liveSteadyLoad(
  gateway: BenchProcess,
  authorization: string,
  options: { liveQueries: number; users: number; writesPerSecond: number; seconds: number },
  log: (line: string) => void,
): Promise<LiveSteadyLoad> {
  const watchers = await openLiveQueries(gateway, authorization, options.liveQueries, (index) => String(index + 1));
  const answersBefore = watchers.reduce((sum, watcher) => sum + watcher.names.length, 0);
  try {
    const cpuBefore = cpuMs(gateway.pid);
    const started = performance.now();
    const writes: Promise<void>[] = [];
    let random = 42;
    // Paced by the clock, not by the answers: a slow gateway falls behind, it does not slow the load down.
    for (let write = 0; write < options.writesPerSecond * options.seconds; write += 1) {
      const due = started + (write * 1000) / options.writesPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      random = (random * 1_103_515_245 + 12_345) % 2 ** 31;
      writes.push(rename(gateway, authorization, String((random % options.users) + 1), `Steady ${write}`));
    }
    await Promise.all(writes);
    const elapsed = performance.now() - started;
    const gatewayCores = Number(((cpuMs(gateway.pid) - cpuBefore) / elapsed).toFixed(2));
    const updates = watchers.reduce((sum, watcher) => sum + watcher.names.length, 0) - answersBefore;
    log(`  ${writes.length} writes in ${Math.round(elapsed)} ms; gateway ${gatewayCores} cores; ${updates} answers`);
    return { liveQueries: options.liveQueries, writesPerSecond: options.writesPerSecond, users: options.users, seconds: options.seconds, gatewayCores, updates };
  } finally {
    await closeAll(watchers);
  }
}
