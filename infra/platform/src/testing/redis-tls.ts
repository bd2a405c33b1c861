import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { DomainEvent } from '../events/index.ts';
import { createLogger } from '../logger.ts';
import { createInfrastructure } from '../runtime.ts';
import { freePort } from './services.ts';
import { waitFor } from './wait.ts';

/** A throwaway certificate authority in a temp dir of its own: what a deployment's private CA is to its Redis. */
export interface TestCertificateAuthority {
  /** The CA's certificate (PEM): the file a client that trusts this CA is given, e.g. as NODE_EXTRA_CA_CERTS. */
  certFile: string;
  /**
   * A server key and certificate signed by this CA, for `names` (subjectAltName entries such as `IP:127.0.0.1`
   * or `DNS:redis.internal`): clients check the host they dialled against these, not against the CN.
   */
  issue(names: string[]): Promise<{ certFile: string; keyFile: string }>;
  remove(): Promise<void>;
}

const openssl = async (args: string[], cwd: string) => {
  try {
    await promisify(execFile)('openssl', args, { cwd });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${stderr || (error as Error).message}`);
  }
};

// An explicit serial: `openssl x509 -req` would otherwise want a serial file beside the CA.
const serial = () => `0x${randomBytes(8).toString('hex')}`;

// P-256 rather than RSA: key generation is instant, so a busy machine does not slow the set-up.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function createTestCertificateAuthority(name = 'redis test CA'): Promise<TestCertificateAuthority> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-tls-ca-'));
  let issued = 0;
  try {
    // The extensions are spelled out so that the result does not depend on the machine's openssl.cnf.
    // prettier-ignore
    await openssl(['req', '-x509', ...EC_KEY, '-days', '2', '-subj', `/CN=${name}`, '-set_serial', serial(),
      '-keyout', 'ca.key', '-out', 'ca.crt',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    certFile: join(dir, 'ca.crt'),
    issue: async (names) => {
      const base = `server-${++issued}`;
      await writeFile(join(dir, `${base}.ext`), `subjectAltName=${names.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
      await openssl(['req', ...EC_KEY, '-subj', `/CN=${names[0] ?? 'redis'}`, '-keyout', `${base}.key`, '-out', `${base}.csr`], dir);
      // prettier-ignore
      await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial(),
        '-days', '2', '-extfile', `${base}.ext`, '-out', `${base}.crt`], dir);
      return { certFile: join(dir, `${base}.crt`), keyFile: join(dir, `${base}.key`) };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A `redis-server` of a test's own that speaks TLS only, on loopback. */
export interface PrivateTlsRedis {
  /** REDIS_URL for it: `rediss://127.0.0.1:<port>/0`. */
  url: string;
  port: number;
  /** The certificate of the CA that signed the server's certificate. */
  caFile: string;
  stop(): Promise<void>;
}

export interface RedisTlsOptions {
  /** Who signs the server's certificate; a CA of the server's own (removed by stop()) when not given. */
  ca?: TestCertificateAuthority;
  /** The names the server's certificate is for; by default the address clients dial. */
  names?: string[];
}

/**
 * Starts `redis-server --port 0 --tls-port <free port>` with a certificate from `ca` for `names`, so that
 * plain TCP is off and every client must complete a TLS handshake. Clients need no certificate of their own
 * (`--tls-auth-clients no`), as with managed Redis services. Resolves once a client that trusts the CA gets a
 * PONG; fails with the server's own output when it cannot start (a redis-server built without TLS says so).
 */
export async function startRedisTlsServer({ ca, names = ['IP:127.0.0.1'] }: RedisTlsOptions = {}): Promise<PrivateTlsRedis> {
  const authority = ca ?? (await createTestCertificateAuthority());
  const dir = await mkdtemp(join(tmpdir(), 'redis-tls-'));
  const cleanUp = async () => {
    await rm(dir, { recursive: true, force: true });
    if (!ca) await authority.remove();
  };
  let server: ReturnType<typeof spawn> | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  let running = true;
  const stop = async () => {
    server?.kill('SIGKILL');
    await exited;
    await cleanUp();
  };
  try {
    const { certFile, keyFile } = await authority.issue(names);
    const port = await freePort();
    // prettier-ignore
    server = spawn('redis-server', [
      '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
      '--tls-cert-file', certFile, '--tls-key-file', keyFile, '--tls-ca-cert-file', authority.certFile,
      '--tls-auth-clients', 'no', '--dir', dir, '--save', '', '--appendonly', 'no',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = server;
    const collect = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4_000));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    // A missing binary never exits, it fails to spawn: either ends the process for stop() and the wait below.
    exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        output += `\n${error.message}`;
        resolve();
      });
    }).then(() => {
      running = false;
    });
    const trusted = await readFile(authority.certFile);
    await waitFor(async () => {
      if (!running) return;
      // The chain is checked, the name is not: a test may want a certificate for a host other than loopback.
      const tls = { ca: trusted, checkServerIdentity: () => undefined };
      const control = new Redis({ host: '127.0.0.1', port, tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      control.on('error', () => {});
      try {
        await control.connect();
        await control.ping();
      } finally {
        control.disconnect();
      }
    }, 10_000, 25);
    if (!running) throw new Error(`redis-server with TLS did not start:\n${output.trim()}`);
    return { url: `rediss://127.0.0.1:${port}/0`, port, caFile: authority.certFile, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** What one process saw when it used REDIS_URL through createInfrastructure, as a service's composition root does. */
export interface InfrastructureProbe {
  /** Each `redis error` the infrastructure logged: the reason a connection failed, as an operator reads it. */
  redisErrors: { code?: string; message: string }[];
  /** Whether the infrastructure logged that it started without Redis. */
  startedWithoutRedis: boolean;
  /** Written by one infrastructure, read by another in the same key space (null when it never arrived). */
  cached: string | null;
  /** Two requests against a limit of one, from the two infrastructures. */
  allowed: boolean[];
  /** What a subscriber on one heard of a message the other published. */
  heard: unknown[];
  /** The durable stream: positions appended, then the positions a reader of that user got back. */
  appended: string[];
  readBack: string[];
  /** Steps that threw, with why. */
  failures: string[];
}

/**
 * Runs `probeInfrastructure(redisUrl, keyPrefix)` in a fresh Node process with `env` added to this one's. Some TLS trust
 * settings, NODE_EXTRA_CA_CERTS above all, are read once when Node starts, so only a new process shows what a
 * service started with them would do.
 */
export async function probeInfrastructureInNewProcess(
  redisUrl: string,
  keyPrefix: string,
  env: Record<string, string | undefined>,
): Promise<{ probe: InfrastructureProbe; stderr: string; exitCode: number | null }> {
  const program = `const { probeInfrastructure } = await import(${JSON.stringify(import.meta.url)});
const probe = await probeInfrastructure(process.env.PROBE_REDIS_URL, process.env.PROBE_KEY_PREFIX);
process.stdout.write(JSON.stringify(probe) + '\\n');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
    env: { ...process.env, ...env, PROBE_REDIS_URL: redisUrl, PROBE_KEY_PREFIX: keyPrefix },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  const line = stdout.split('\n').find((text) => text.startsWith('{"redisErrors"'));
  if (!line) throw new Error(`the probe exited ${exitCode} without a report:\n${stdout}\n${stderr}`);
  // The exit code is the caller's to judge: ioredis can die of a second TLS error on a socket it is closing.
  return { probe: JSON.parse(line) as InfrastructureProbe, stderr, exitCode };
}

/**
 * Two infrastructures on `redisUrl` in the key space `keyPrefix`, as two replicas of a deployment: the cache, a rate limit,
 * pub/sub and the durable stream, each used once across them. Every step runs, whatever the previous one did,
 * and says what it saw; the caller decides what that should have been.
 */
export async function probeInfrastructure(redisUrl: string, keyPrefix: string): Promise<InfrastructureProbe> {
  const lines: string[] = [];
  const destination = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ name: 'tls-probe', level: 'warn', destination });
  const probe: InfrastructureProbe = { redisErrors: [], startedWithoutRedis: false, cached: null, allowed: [], heard: [], appended: [], readBack: [], failures: [] };
  const step = async (name: string, action: () => Promise<void>) => {
    try {
      await action();
    } catch (error) {
      probe.failures.push(`${name}: ${(error as Error).message}`);
    }
  };
  const [a, b] = await Promise.all([createInfrastructure({ redisUrl, keyPrefix, logger }), createInfrastructure({ redisUrl, keyPrefix, logger })]);
  try {
    await step('cache', async () => {
      await a.cache.set('greeting', 'hello');
      probe.cached = (await b.cache.get('greeting')) ?? null;
    });
    await step('rate limit', async () => {
      const policy = { limit: 1, windowMs: 60_000 };
      probe.allowed.push((await a.rateLimiter.consume('client', policy)).allowed, (await b.rateLimiter.consume('client', policy)).allowed);
    });
    await step('pub/sub', async () => {
      const unsubscribe = await b.pubsub.subscribe('tls-probe', (message) => probe.heard.push(message));
      try {
        await a.pubsub.publish('tls-probe', { hello: 'over TLS' });
        await waitFor(() => {
          if (probe.heard.length === 0) throw new Error('the subscriber heard nothing');
        });
      } finally {
        await unsubscribe();
      }
    });
    await step('event stream', async () => {
      const event: DomainEvent = { id: randomUUID(), kind: 'USER_UPDATED', userId: '42', occurredAt: new Date().toISOString(), source: 'users', changed: ['User:42'] };
      probe.appended = await a.events.append([event]);
      probe.readBack = (await b.events.read({ userId: '42' }, null, 10)).map((stored) => stored.position);
    });
  } finally {
    await a.close();
    await b.close();
  }
  for (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string; err?: { code?: string; message?: string } };
    if (entry.msg === 'redis error' && entry.err) probe.redisErrors.push({ ...(entry.err.code ? { code: entry.err.code } : {}), message: entry.err.message ?? '' });
    if (entry.msg?.startsWith('redis not ready')) probe.startedWithoutRedis = true;
  }
  return probe;
}
