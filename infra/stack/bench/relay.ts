// `npm run -s bench:relay -w @fed/stack -- [--backlog 20000] [--writers 8] [--seconds 10]`: events per second
// through the outbox relay, on real Postgres and Redis.
//   backlog: `backlog` committed events wait in the outbox; one relay drains them into the stream.
//   steady:  `writers` concurrent writers commit one event per transaction (as updateUser does) for `seconds`,
//            each waiting for its relay as a mutation does; events/s committed and relayed, and the time each
//            write waited for its event to reach the stream.
// Three relays (three "replicas", each with its own pool) run in the steady case, as a scaled-out deployment.
// Events belong to 500 users (each write the next one), so that a partitioned stream gets all its partitions.
// Relays poll as a service's do (a failed pass is tried again at the next poll, a second later); each case
// counts its failed passes.
//   --redis URL        REDIS_URL (TEST_REDIS_URL's by default; redis+cluster://… for a cluster)
//   --partitions N     EVENT_STREAM_PARTITIONS of the stream (1)
//   --replica-wait MS  EVENT_STREAM_REPLICA_WAIT_MS: each append waits for a replica (0, off; needs replicas)
//   --passes N         EVENT_RELAY_PASSES: passes each relay runs at once (0: as many as the partitions, the default)
// The backlog case also reports where the relay's time goes: per round, the read of which rows are unsent (select);
// per pass, its locks, the claim (rows marked sent and read), the append and the commit.
// Results go to stdout as JSON, progress to stderr.
//
// Side by side (issue 25: 4 partitions on a 3-primary cluster against 1 on one Redis, at least 1.5×):
//   --compare A,B      each side REDIS:PARTITIONS[:REPLICA_WAIT_MS[:PASSES]], REDIS one of redis (a private redis-server), cluster (a private
//                      cluster of 3 primaries, each with --replicas replicas) or shared (the machine's Redis):
//                      `--compare redis:1,cluster:4`. Both cases run on each side in turn, --runs times, the sides'
//                      order alternating; every run on a fresh key prefix and an emptied outbox. Medians and the
//                      ratio of each side to the first, with the CPU of the Redis servers and of this process (the
//                      relays and writers) per event; a markdown table and every run's line on stdout.
//   --runs N           (5)   --replicas N   (1, as in production; 0 for primaries alone)
import { randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { Cluster } from 'ioredis';
import {
  createDatabase,
  createLogger,
  createOutboxRelay,
  createRedisClient,
  createUnitOfWork,
  DEFAULT_RETENTION,
  migrateDatabase,
  outbox,
  RedisEventStream,
  type DomainEvent,
  type PassPhase,
  type RedisClient,
} from '@fed/platform';
import { cpuMs, createTestDatabase, median, percentile, redisServerPids, startRedisCluster, startRedisServer, testRedisUrl, uniqueName } from '@fed/platform/testing';
import { migrationsFolder, schema } from '@fed/users/db';
import { sql } from 'drizzle-orm';

const { values } = parseArgs({
  options: {
    backlog: { type: 'string', default: '20000' },
    writers: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '10' },
    redis: { type: 'string' },
    partitions: { type: 'string', default: '1' },
    'replica-wait': { type: 'string', default: '0' },
    passes: { type: 'string', default: '0' },
    compare: { type: 'string' },
    runs: { type: 'string', default: '5' },
    replicas: { type: 'string', default: '1' },
  },
});
const log = (line: string) => process.stderr.write(`${line}\n`);
/**
 * The relays' warnings, counted: a pass that fails (a script past the services' 200 ms command timeout on a busy
 * machine) is retried by the next poll, as in a service, and the run says how often that happened.
 */
const failures = { count: 0, last: '' };
const logger = createLogger({
  name: 'bench',
  level: 'warn',
  destination: new Writable({
    write(chunk: Buffer, _encoding, done) {
      const line = chunk.toString();
      if (line.includes('outbox relay failed')) {
        failures.count += 1;
        failures.last = /"message":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line;
      }
      done();
    },
  }),
});
const USERS = 500;
/** A hang detector for the backlog's drain, far above the second or two it takes. */
const DRAIN_BOUND_MS = 120_000;

type Handle = Awaited<ReturnType<typeof createDatabase<typeof schema>>>;

/** A Redis to relay into: the client the relays share, and the server processes behind it (for their CPU). */
interface Target {
  label: string;
  url: string;
  pids: number[];
  stop(): Promise<void>;
}

interface Measured {
  backlog: {
    events: number;
    ms: number;
    eventsPerSecond: number;
    unsent: number;
    failedPasses: number;
    /**
     * Of the drain's time, how much went to the stream's append, summed over the passes (concurrent passes
     * overlap, so with several it can pass 1).
     */
    appendShare: number;
    /** Where a pass's time goes (see PassPhase): ms per pass of each step, and events per pass. */
    profile: Profile;
    redisCpuMsPerEvent: number;
    benchCpuMsPerEvent: number;
  };
  steady: {
    writers: number;
    relays: number;
    committed: number;
    relayed: number;
    eventsPerSecond: number;
    writeWithRelayMs: { p50: number; p99: number };
    failedPasses: number;
    redisCpuMsPerEvent: number;
    benchCpuMsPerEvent: number;
  };
  /** Where each partition's key space lives on a cluster: the primary serving its slot. */
  placement?: string[];
}

/**
 * Per step, its mean ms per call (`select` once per round, the others once per pass); `rounds` and `passes` run,
 * `events` per pass, `concurrency` the relay's passes.
 */
type Profile = Record<PassPhase, number> & { rounds: number; passes: number; events: number; concurrency: number };

const PHASES = ['select', 'lock', 'claim', 'append', 'commit'] as const satisfies readonly PassPhase[];

function profiler(concurrency: number) {
  const totals = new Map<PassPhase, { ms: number; calls: number }>(PHASES.map((phase) => [phase, { ms: 0, calls: 0 }]));
  let events = 0;
  return {
    phase: (name: PassPhase, ms: number, count: number) => {
      const total = totals.get(name)!;
      total.ms += ms;
      total.calls += 1;
      // Every pass ends in a commit with its count.
      if (name === 'commit') events += count;
    },
    appendMs: () => totals.get('append')!.ms,
    profile: (): Profile => {
      const mean = (phase: PassPhase) => round(totals.get(phase)!.ms / Math.max(1, totals.get(phase)!.calls), 2);
      const passes = totals.get('commit')!.calls;
      return {
        ...(Object.fromEntries(PHASES.map((phase) => [phase, mean(phase)])) as Record<PassPhase, number>),
        rounds: totals.get('select')!.calls,
        passes,
        events: round(events / Math.max(1, passes)),
        concurrency,
      };
    },
  };
}

const round = (value: number, digits = 0) => Number(value.toFixed(digits));
const processMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1_000;
};

async function startTarget(kind: string): Promise<Target> {
  if (kind === 'cluster') {
    const replicasPerPrimary = Number(values.replicas);
    const cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary });
    return { label: `cluster (3 primaries${replicasPerPrimary ? ` + ${3 * replicasPerPrimary} replicas` : ', no replicas'})`, url: cluster.url, pids: await redisServerPids(cluster.nodes), stop: cluster.stop };
  }
  if (kind !== 'redis' && kind !== 'shared') throw new Error(`unknown Redis ${kind}: redis, cluster or shared`);
  const server = kind === 'redis' ? await startRedisServer() : undefined;
  const url = server?.url ?? testRedisUrl();
  const { hostname, port } = new URL(url);
  return { label: kind === 'redis' ? 'one Redis' : 'the shared Redis', url, pids: await redisServerPids([{ host: hostname, port: Number(port || 6379) }]), stop: async () => server?.stop() };
}

/** Services connect without an offline queue: the bench waits until the client is ready before it sends. */
async function connect(url: string): Promise<RedisClient> {
  const client = createRedisClient(url);
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', reject);
  });
  return client;
}

const event = (userId: number): DomainEvent => ({
  id: randomUUID(),
  kind: 'USER_UPDATED',
  userId: String(userId),
  occurredAt: new Date().toISOString(),
  source: 'users',
  changed: [`User:${userId}`],
});

/** Both cases once, on `redis` with `partitions`, under `prefix`, on an outbox emptied first. */
async function measure(handles: readonly Handle[], redis: RedisClient, pids: readonly number[], stream: { partitions: number; replicaWaitMs: number; passes: number }, prefix: string): Promise<Measured> {
  const [primary] = handles as [Handle];
  await primary.db.delete(outbox);
  const { partitions } = stream;
  const events = new RedisEventStream(redis, prefix, DEFAULT_RETENTION, stream);
  const redisMs = () => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const sentCount = async () => ((await primary.db.execute(sql`select count(*)::int as n from outbox where sent_at is not null`)) as unknown as [{ n: number }])[0].n;

  // Backlog: rows committed while no relay ran.
  const backlog = Number(values.backlog);
  for (let start = 0; start < backlog; start += 1_000) {
    await primary.db.insert(outbox).values(Array.from({ length: Math.min(1_000, backlog - start) }, (_, index) => ({ event: event((start + index) % USERS) })));
  }
  // The relay runs `passes` passes at once (0: as many as the stream has partitions, the services' default).
  const passes = stream.passes || partitions;
  const profile = profiler(passes);
  const drain = createOutboxRelay({ db: primary.db, stream: events, logger, hooks: { phase: profile.phase }, passes });
  let [redisBefore, benchBefore, failedBefore] = [redisMs(), processMs(), failures.count];
  let started = performance.now();
  // Started, so that it polls: a flush answers only once a pass drained the outbox, and after a failed pass
  // only the poll tries again.
  drain.start();
  if (!(await drain.flush(DRAIN_BOUND_MS))) throw new Error(`the backlog was not drained within ${DRAIN_BOUND_MS / 1000} s: ${failures.last}`);
  const drainFailures = failures.count - failedBefore;
  const drainMs = performance.now() - started;
  const drainCpu = { redis: redisMs() - redisBefore, bench: processMs() - benchBefore };
  await drain.stop();
  const drained = await sentCount();
  const unsent = backlog - drained;

  // Steady: concurrent writers, three relays.
  const relays = handles.map((handle) => createOutboxRelay({ db: handle.db, stream: events, logger, passes }));
  for (const relay of relays) relay.start();
  const writers = Number(values.writers);
  const deadline = Date.now() + Number(values.seconds) * 1_000;
  const waits: number[] = [];
  let committed = 0;
  [redisBefore, benchBefore, failedBefore] = [redisMs(), processMs(), failures.count];
  started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const handle = handles[writer % handles.length]!;
      const relay = relays[writer % relays.length]!;
      let flushed = 0;
      const transact = createUnitOfWork({ db: handle.db, source: 'users', relay: { flush: (timeoutMs) => relay.flush(timeoutMs).then(() => void (flushed = performance.now())) } })();
      for (let write = 0; Date.now() < deadline; write += 1) {
        const userId = (write * writers + writer) % USERS;
        const begun = performance.now();
        await transact(async (tx, emit) => {
          await tx.execute(sql`select 1`);
          emit({ kind: 'USER_UPDATED', userId: String(userId), changed: [`User:${userId}`] });
        });
        committed += 1;
        waits.push(flushed - begun);
      }
    }),
  );
  const steadyMs = performance.now() - started;
  const steadyCpu = { redis: redisMs() - redisBefore, bench: processMs() - benchBefore };
  for (const relay of relays) await relay.stop();
  const relayed = (await sentCount()) - drained;
  waits.sort((a, b) => a - b);
  return {
    backlog: {
      events: backlog,
      ms: Math.round(drainMs),
      eventsPerSecond: Math.round((backlog / drainMs) * 1_000),
      unsent,
      failedPasses: drainFailures,
      appendShare: round(profile.appendMs() / drainMs, 2),
      profile: profile.profile(),
      redisCpuMsPerEvent: round(drainCpu.redis / Math.max(1, drained), 4),
      benchCpuMsPerEvent: round(drainCpu.bench / Math.max(1, drained), 4),
    },
    steady: {
      writers,
      relays: relays.length,
      committed,
      relayed,
      eventsPerSecond: Math.round((committed / steadyMs) * 1_000),
      writeWithRelayMs: { p50: round(percentile(waits, 50), 1), p99: round(percentile(waits, 99), 1) },
      failedPasses: failures.count - failedBefore,
      redisCpuMsPerEvent: round(steadyCpu.redis / Math.max(1, relayed), 4),
      benchCpuMsPerEvent: round(steadyCpu.bench / Math.max(1, relayed), 4),
    },
    ...(redis instanceof Cluster && { placement: await placement(redis, prefix, partitions) }),
  };
}

/** `partition → host:port` of the primary that serves the partition's hash tag, as the client sees the cluster. */
async function placement(cluster: Cluster, prefix: string, partitions: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: partitions }, async (_, partition) => {
      const slot = Number(await cluster.cluster('KEYSLOT', `${prefix}{events${partition === 0 ? '' : `:${partition}`}}:log`));
      return `${partition}→${cluster.slots[slot]?.[0] ?? '?'}`;
    }),
  );
}

/** Every key under `prefix`, on each primary (a cluster's keys of one DEL must share a slot; per node they need not be one). */
async function deleteKeys(client: RedisClient, prefix: string): Promise<void> {
  for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
    const keys = await node.keys(`${prefix}*`);
    const pipeline = node.pipeline();
    for (const key of keys) pipeline.unlink(key);
    await pipeline.exec();
  }
}

const machine = () => ({ cores: cpus().length, loadavg: loadavg().map((value) => round(value, 2)), node: process.version, date: new Date().toISOString() });

const database = await createTestDatabase('bench_relay');
const handles: Handle[] = [];
const targets: Target[] = [];
const clients: RedisClient[] = [];
/** Prefixes to delete at the end, on the client that wrote them (private servers are stopped with their keys). */
const written: { client: RedisClient; prefix: string }[] = [];
try {
  for (let index = 0; index < 3; index++) handles.push(await createDatabase({ location: { url: database.url }, schema }));
  await migrateDatabase(handles[0]!, migrationsFolder);

  if (!values.compare) {
    const url = values.redis ?? testRedisUrl();
    const redis = await connect(url);
    clients.push(redis);
    const prefix = `${uniqueName('bench')}:`;
    written.push({ client: redis, prefix });
    log(`relaying into ${url} with ${values.partitions} partition(s)`);
    // The CPU of the servers only where they run on this machine.
    const nodes = redis instanceof Cluster ? redis.nodes('all').map((node) => ({ host: node.options.host!, port: node.options.port! })) : [{ host: new URL(url).hostname, port: Number(new URL(url).port || 6379) }];
    const pids = (await redisServerPids(nodes).catch(() => [])).filter((pid) => Number.isInteger(pid) && pid > 0);
    const measured = await measure(handles, redis, pids, { partitions: Number(values.partitions), replicaWaitMs: Number(values['replica-wait']), passes: Number(values.passes) }, prefix);
    process.stdout.write(`${JSON.stringify({ machine: machine(), redis: url.replace(/\/\/[^@/]*@/, '//'), partitions: Number(values.partitions), ...measured }, null, 2)}\n`);
  } else {
    const sides = values.compare.split(',').map((side) => {
      const [kind = '', partitions = '1', replicaWaitMs = '0', passes = values.passes] = side.split(':');
      return { kind, partitions: Number(partitions), replicaWaitMs: Number(replicaWaitMs), passes: Number(passes), runs: [] as Measured[], name: '', target: undefined as Target | undefined, client: undefined as RedisClient | undefined };
    });
    if (sides.length < 2) throw new Error('--compare takes two or more sides: redis:1,cluster:4');
    const atStart = machine();
    for (const side of sides) {
      log(`starting ${side.kind}`);
      side.target = await startTarget(side.kind);
      targets.push(side.target);
      side.client = await connect(side.target.url);
      clients.push(side.client);
      const passes = side.passes || side.partitions;
      side.name = `${side.target.label}, ${side.partitions} partition${side.partitions === 1 ? '' : 's'}${side.replicaWaitMs ? `, WAIT ${side.replicaWaitMs} ms` : ''}${passes === side.partitions ? '' : `, ${passes} pass${passes === 1 ? '' : 'es'}`}`;
    }
    const runs = Number(values.runs);
    for (let run = 1; run <= runs; run += 1) {
      for (const side of run % 2 ? sides : [...sides].reverse()) {
        const prefix = `${uniqueName('bench')}:`;
        if (side.kind === 'shared') written.push({ client: side.client!, prefix });
        const measured = await measure(handles, side.client!, side.target!.pids, side, prefix);
        side.runs.push(measured);
        log(`  run ${run} [${side.name}]: ${JSON.stringify(measured)}`);
        if (measured.backlog.failedPasses + measured.steady.failedPasses > 0) log(`    a pass failed: ${failures.last}`);
      }
    }
    const rows: [string, (run: Measured) => number, number][] = [
      ['backlog: events/s (one relay drains it)', (run) => run.backlog.eventsPerSecond, 0],
      ['backlog: failed passes (retried at the next poll)', (run) => run.backlog.failedPasses, 0],
      ['backlog: share of the drain in the stream append', (run) => run.backlog.appendShare, 2],
      ['backlog: Redis CPU ms/event', (run) => run.backlog.redisCpuMsPerEvent, 4],
      ['backlog: bench process CPU ms/event', (run) => run.backlog.benchCpuMsPerEvent, 4],
      ...PHASES.map((phase): [string, (run: Measured) => number, number] => [`backlog: ms in ${phase} (per ${phase === 'select' ? 'round' : 'pass'})`, (run) => run.backlog.profile[phase], 2]),
      ['backlog: rounds', (run) => run.backlog.profile.rounds, 0],
      ['backlog: passes', (run) => run.backlog.profile.passes, 0],
      ['backlog: per pass, events', (run) => run.backlog.profile.events, 0],
      ['steady: events/s committed and relayed', (run) => run.steady.eventsPerSecond, 0],
      ['steady: write + relay p50 ms', (run) => run.steady.writeWithRelayMs.p50, 1],
      ['steady: write + relay p99 ms', (run) => run.steady.writeWithRelayMs.p99, 1],
      ['steady: failed passes', (run) => run.steady.failedPasses, 0],
      ['steady: Redis CPU ms/event', (run) => run.steady.redisCpuMsPerEvent, 4],
      ['steady: bench process CPU ms/event', (run) => run.steady.benchCpuMsPerEvent, 4],
    ];
    const sameRound: [string, (run: Measured) => number][] = [
      ['backlog: events/s', (run) => run.backlog.eventsPerSecond],
      ['steady: events/s', (run) => run.steady.eventsPerSecond],
    ];
    const [first, ...others] = sides;
    const lines = [
      `# Outbox relay: ${sides.map((side) => side.name).join(' against ')}`,
      '',
      `${runs} runs per side, the sides' order alternating, medians. Each run: ${values.backlog} outbox rows drained by one relay (backlog), then ${values.writers} writers for ${values.seconds} s with three relays (steady), ${USERS} users; ` +
        `a fresh key prefix and an emptied outbox every run, one Postgres database for all. Redis servers private to this run, started alike; the cluster's CPU counts every node, replicas included. ${cpus().length} cores, Node ${process.version}.`,
      '',
      `Started ${atStart.date}, load average ${atStart.loadavg.join(' ')}; ended ${new Date().toISOString()}, load average ${machine().loadavg.join(' ')} (1, 5, 15 min; shared with other work).`,
      '',
      `| | ${sides.map((side) => side.name).join(' | ')} | ${others.map((side) => `${side.name} / ${first!.name}`).join(' | ')} |`,
      `|---|${sides.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`,
      ...rows.map(([label, pick, digits]) => {
        const medians = sides.map((side) => median(side.runs.map(pick)));
        return `| ${label} | ${medians.map((value) => value.toFixed(digits)).join(' | ')} | ${medians.slice(1).map((value) => (medians[0]! > 0 ? `${(value / medians[0]!).toFixed(2)}×` : '')).join(' | ')} |`;
      }),
      // The machine's load drifts between rounds more than between the sides of one: each round's ratio, then their median.
      ...sameRound.map(([label, pick]) => {
        const ratios = others.map((side) => median(side.runs.map((run, index) => pick(run) / Math.max(1, pick(first!.runs[index]!)))));
        return `| ${label}, over the first side's in the same round (median) | ${sides.map(() => '').join(' | ')} | ${ratios.map((ratio) => `${ratio.toFixed(2)}×`).join(' | ')} |`;
      }),
      '',
      ...sides.flatMap((side) => (side.runs[0]?.placement ? [`Partitions on the cluster's primaries (${side.name}): ${side.runs[0].placement.join(', ')}.`, ''] : [])),
      '## Runs',
      '',
      '```',
      ...sides.flatMap((side) => side.runs.map((measured, index) => `run ${index + 1} [${side.name}]: ${JSON.stringify(measured)}`)),
      '```',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
} finally {
  for (const handle of handles) await handle.close();
  for (const { client, prefix } of written) await deleteKeys(client, prefix).catch((error: unknown) => log(`deleting ${prefix}*: ${String(error)}`));
  for (const client of clients) client.disconnect();
  for (const target of targets) await target.stop().catch((error: unknown) => log(`stopping ${target.label}: ${String(error)}`));
  await database.drop();
}
