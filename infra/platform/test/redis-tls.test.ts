// REDIS_URL as rediss:// against a real redis-server that speaks TLS only, its certificate signed by a throwaway
// CA. A deployment makes its services trust that CA with NODE_EXTRA_CA_CERTS, which Node reads once at start-up,
// so each case runs createInfrastructure in a new Node process, exactly as a service's composition root would.
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestCertificateAuthority,
  probeInfrastructureInNewProcess,
  startRedisTlsServer,
  type PrivateTlsRedis,
  type TestCertificateAuthority,
} from '../src/testing/redis-tls.ts';
import { uniqueName } from '../src/testing/services.ts';

let deploymentCa: TestCertificateAuthority;
let otherCa: TestCertificateAuthority;
let server: PrivateTlsRedis;
// Signed by the trusted CA, but for a name other than the address clients dial.
let misnamed: PrivateTlsRedis;

beforeAll(async () => {
  [deploymentCa, otherCa] = await Promise.all([createTestCertificateAuthority('deployment CA'), createTestCertificateAuthority('someone else\'s CA')]);
  [server, misnamed] = await Promise.all([startRedisTlsServer({ ca: deploymentCa }), startRedisTlsServer({ ca: deploymentCa, names: ['DNS:redis.internal'] })]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), misnamed?.stop()]);
  await Promise.all([deploymentCa?.remove(), otherCa?.remove()]);
});

/** The keys under `prefix` as the server itself holds them, asked over a connection that trusts the CA. */
async function keysOn(target: PrivateTlsRedis, prefix: string): Promise<string[]> {
  const tls = { ca: await readFile(target.caFile), checkServerIdentity: () => undefined };
  const direct = new Redis({ host: '127.0.0.1', port: target.port, tls, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await direct.connect();
    return (await direct.keys(`${prefix}*`)).sort();
  } finally {
    direct.disconnect();
  }
}

describe('REDIS_URL=rediss:// against a real TLS-only Redis', () => {
  it('with NODE_EXTRA_CA_CERTS naming the CA, the cache, rate limits, pub/sub and the event stream all work', async () => {
    const prefix = `${uniqueName('tls_trusted')}:`;
    const { probe, exitCode } = await probeInfrastructureInNewProcess(server.url, prefix, { NODE_EXTRA_CA_CERTS: deploymentCa.certFile });

    expect(probe).toEqual({
      redisErrors: [],
      startedWithoutRedis: false,
      cached: 'hello',
      allowed: [true, false],
      heard: [{ hello: 'over TLS' }],
      appended: [expect.any(String)],
      readBack: probe.appended,
      failures: [],
    });
    expect(exitCode).toBe(0);
    // It went to this server, over TLS: plain TCP is off there.
    const keys = await keysOn(server, prefix);
    expect(keys).toContainEqual(expect.stringMatching(new RegExp(`^${prefix}cache:`)));
    expect(keys).toContainEqual(expect.stringMatching(new RegExp(`^${prefix}ratelimit:`)));
  });

  const SELF_SIGNED = { code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain' };
  const refusals = [
    { name: 'without NODE_EXTRA_CA_CERTS', target: () => server, env: () => ({ NODE_EXTRA_CA_CERTS: undefined }), reason: SELF_SIGNED },
    { name: 'trusting another CA', target: () => server, env: () => ({ NODE_EXTRA_CA_CERTS: otherCa.certFile }), reason: SELF_SIGNED },
    {
      name: 'with a certificate from the trusted CA for another host',
      target: () => misnamed,
      env: () => ({ NODE_EXTRA_CA_CERTS: deploymentCa.certFile }),
      reason: { code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: " },
    },
  ];

  it.each(refusals)('$name, the certificate is refused: the service logs why, starts without Redis and sends it nothing', async ({ target, env, reason }) => {
    const prefix = `${uniqueName('tls_refused')}:`;
    const { probe } = await probeInfrastructureInNewProcess(target().url, prefix, env());

    expect(probe.redisErrors.length).toBeGreaterThan(0);
    expect(new Set(probe.redisErrors.map(({ code, message }) => `${code}: ${message}`))).toEqual(new Set([`${reason.code}: ${reason.message}`]));
    expect(probe.startedWithoutRedis).toBe(true);
    // Degraded as with Redis down: cache misses, the rate limit fails open, nothing is heard or stored.
    expect(probe).toMatchObject({ cached: null, allowed: [true, true], heard: [], appended: [], readBack: [] });
    expect(await keysOn(target(), prefix)).toEqual([]);
  });

  it('a NODE_EXTRA_CA_CERTS file that cannot be read is reported by Node at start-up, and the certificate is refused', async () => {
    const prefix = `${uniqueName('tls_unreadable')}:`;
    const missing = `${deploymentCa.certFile}.missing`;
    const { probe, stderr } = await probeInfrastructureInNewProcess(server.url, prefix, { NODE_EXTRA_CA_CERTS: missing });

    expect(stderr).toContain(`Warning: Ignoring extra certs from \`${missing}\`, load failed`);
    expect(probe.redisErrors).toContainEqual(SELF_SIGNED);
    expect(probe.startedWithoutRedis).toBe(true);
    expect(await keysOn(server, prefix)).toEqual([]);
  });
});
