// The compose load balancer's nginx.conf, run by a real nginx in front of a real gateway on loopback: what the
// public port forwards, and what it keeps to the platform (probes, metrics). Skipped where no nginx binary is
// installed (NGINX_BIN, else /usr/sbin/nginx): Debian's 1.22 lacks the upstream `resolve` parameter the
// compose image (1.28) uses, so the test swaps Docker's service name for the gateway's loopback address.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAuthenticator, createGateway, type Gateway } from '@fed/gateway';
import { DEFAULT_SUPERGRAPH_PATH, DEVELOPMENT_AUTH } from '@fed/gateway/config';
import { readSupergraph } from '@fed/gateway/supergraph';
import { createLogger, createMemoryCache, developmentSecret, listen, MemoryRateLimiter } from '@fed/platform';
import { freePort, waitFor } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NGINX = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
const CONFIG = fileURLToPath(new URL('../nginx.conf', import.meta.url));

describe.skipIf(!existsSync(NGINX))('the load balancer (infra/docker/nginx.conf)', () => {
  let gateway: Gateway;
  let direct: string;
  let publicOrigin: string;
  let healthOrigin: string;
  let nginx: ChildProcess;
  let dir: string;

  beforeAll(async () => {
    gateway = await createGateway({
      supergraphSdl: readSupergraph(DEFAULT_SUPERGRAPH_PATH),
      subgraphUrls: { users: 'http://127.0.0.1:9/graphql', orders: 'http://127.0.0.1:9/graphql' },
      logger: createLogger({ name: 'test', level: 'silent' }),
      cache: createMemoryCache(),
      rateLimiter: new MemoryRateLimiter(),
      authenticate: createAuthenticator(DEVELOPMENT_AUTH),
      subgraphSecrets: {},
      defaultSubgraphSecret: (name) => developmentSecret(name),
    });
    const gatewayPort = await listen(gateway.httpServer, 0, '127.0.0.1');
    direct = `http://127.0.0.1:${gatewayPort}`;

    const [publicPort, healthPort] = [await freePort(), await freePort()];
    dir = mkdtempSync(join(tmpdir(), 'nginx-'));
    chmodSync(dir, 0o777);
    const replace = (text: string, from: string, to: string) => {
      expect(text).toContain(from);
      return text.replace(from, to);
    };
    let config = readFileSync(CONFIG, 'utf8');
    config = replace(config, 'server gateway:4000 resolve;', `server 127.0.0.1:${gatewayPort};`);
    config = replace(config, 'listen 4000;', `listen 127.0.0.1:${publicPort};`);
    config = replace(config, 'listen 127.0.0.1:8080;', `listen 127.0.0.1:${healthPort};`);
    config = replace(config, 'access_log /dev/stdout lb;', 'access_log off;');
    // Its own pid file and temp paths: nothing of the machine's nginx (/var/lib/nginx) is needed.
    const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${dir}/${kind};`).join('\n');
    config = replace(config, 'http {', `pid ${dir}/nginx.pid;\nhttp {\n${temp}`);
    writeFileSync(join(dir, 'nginx.conf'), config);
    nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'inherit'] });
    publicOrigin = `http://127.0.0.1:${publicPort}`;
    healthOrigin = `http://127.0.0.1:${healthPort}`;
    await waitFor(async () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited with ${nginx.exitCode} (its error log is above)`);
      expect((await fetch(`${healthOrigin}/healthz`)).status).toBe(200);
    });
  });
  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    await gateway?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('forwards GraphQL on the public port', async () => {
    const response = await fetch(`${publicOrigin}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
    expect({ status: response.status, body: await response.json() }).toEqual({ status: 200, body: { data: { __typename: 'Query' } } });
  });

  it('keeps /metrics and the probes off the public port (the gateway itself serves them)', async () => {
    // /readyz is 503 here (no subgraph answers); what matters is that the gateway answers it at all.
    for (const path of ['/metrics', '/healthz', '/readyz']) expect([200, 503], path).toContain((await fetch(`${direct}${path}`)).status);
    for (const path of ['/metrics', '/healthz', '/readyz', '/metrics?format=prometheus', '/%6Detrics', '//metrics', '/graphql/../metrics']) {
      const response = await fetch(`${publicOrigin}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.text(), path).not.toMatch(/http_requests|"status"/);
    }
  });

  it('answers its own health check on a loopback-only port, which serves nothing else', async () => {
    expect((await fetch(`${healthOrigin}/healthz`)).status).toBe(200);
    expect((await fetch(`${healthOrigin}/metrics`)).status).toBe(404);
    expect((await fetch(`${healthOrigin}/graphql`)).status).toBe(404);
  });
});
