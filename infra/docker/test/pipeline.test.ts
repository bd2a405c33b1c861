import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateWorkflow } from '@action-validator/core';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE = readFileSync(join(ROOT, '.github/workflows/ci.yml'), 'utf8');
const SCRIPTS = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, string | number | boolean>;
}
interface Job {
  'runs-on'?: string;
  needs?: string | string[];
  permissions?: Record<string, string>;
  services?: Record<string, { image: string; env?: Record<string, string>; ports?: string[]; options?: string }>;
  env?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions: Record<string, string>;
  concurrency: { group: string; 'cancel-in-progress': boolean | string };
  jobs: Record<string, Job>;
}

const workflow = parse(SOURCE) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
const runs = steps.flatMap((step) => step.run?.split('\n') ?? []).map((line) => line.trim());
const uses = (action: string) => steps.filter((step) => step.uses?.split('@')[0] === action);
// The schema's answer for a job is a oneOf (a job with steps, or a reusable-workflow call): the reasons sit inside.
const errorText = (source: string) => JSON.stringify(validateWorkflow(source).errors);

describe('.github/workflows/ci.yml', () => {
  it('passes the SchemaStore workflow schema', () => {
    expect(validateWorkflow(SOURCE).errors).toEqual([]);
  });

  it.each([
    ['a job without runs-on', (w: Workflow) => delete w.jobs.test!['runs-on'], /runs-on.*required|required.*runs-on/],
    ['a misspelled key', (w: Workflow) => Object.assign(w.jobs.image!, { 'time-out-minutes': 5 }), /Additional property 'time-out-minutes'/],
    ['an unknown trigger', (w: Workflow) => Object.assign(w.on, { pushed: null }), /pushed/],
  ])('reports %s', (_what, breakIt, expected) => {
    const broken = structuredClone(workflow);
    breakIt(broken);
    expect(errorText(stringify(broken))).toMatch(expected);
  });

  it('runs on every push and pull request, cancelling stale runs, read-only unless a job needs more', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['pull_request', 'push']);
    expect(workflow.concurrency.group).toContain('github.ref');
    expect(workflow.concurrency['cancel-in-progress']).toBeTruthy();
    expect(workflow.permissions).toEqual({ contents: 'read' });
    const writers = Object.entries(workflow.jobs).filter(([, job]) => Object.values(job.permissions ?? {}).includes('write'));
    expect(writers.map(([name, job]) => [name, job.permissions])).toEqual([['image', { contents: 'read', packages: 'write' }]]);
  });

  it('runs only npm scripts that exist, and the checks .ci/run makes', () => {
    const invoked = runs.flatMap((line) => [...line.matchAll(/\bnpm (?:run(?:\s+-\S+)*\s+([\w:-]+)|(test)\b)/g)].map((m) => m[1] ?? m[2]!));
    expect(invoked.filter((script) => !SCRIPTS.includes(script))).toEqual([]);
    for (const line of ['npm ci', 'npm run -s compose -- --check', 'npm run -s codegen -- --check', 'npm run typecheck', 'npm run lint', 'npm test']) {
      expect(runs).toContain(line);
    }
  });

  it('tests on Node 20 against Postgres 15 and Redis 7 with health checks, in the test environment', () => {
    const test = workflow.jobs.test!;
    expect(test['runs-on']).toBe('ubuntu-latest');
    expect(uses('actions/setup-node').map((step) => step.with)).toEqual([{ 'node-version': 20, cache: 'npm' }]);
    const services = Object.values(test.services ?? {});
    expect(services.map(({ image, ports }) => [image, ports])).toEqual([
      ['postgres:15', ['5432:5432']],
      ['redis:7', ['6379:6379']],
    ]);
    for (const service of services) expect(service.options).toMatch(/--health-cmd /);
    expect(test.env).toMatchObject({
      NODE_ENV: 'test',
      APOLLO_TELEMETRY_DISABLED: '1',
      TEST_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      TEST_REDIS_URL: 'redis://127.0.0.1:6379/0',
    });
    // Without trust auth the password-less TEST_DATABASE_URL above would be refused.
    expect(test.services?.postgres?.env).toEqual({ POSTGRES_HOST_AUTH_METHOD: 'trust' });
  });

  it('builds the Dockerfile that exists, with the GitHub Actions cache, and pushes only from main', () => {
    const builds = uses('docker/build-push-action');
    expect(builds.length).toBeGreaterThan(0);
    for (const build of builds) {
      expect(existsSync(join(ROOT, String(build.with?.context), String(build.with?.file)))).toBe(true);
      expect(build.with?.['cache-from']).toBe('type=gha');
    }
    expect(uses('docker/setup-buildx-action')).toHaveLength(1);
    const image = workflow.jobs.image!;
    expect(image.env?.PUSH).toBe("${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}");
    const pushing = image.steps.filter((step) => step.with?.push === true || step.uses?.startsWith('docker/login-action'));
    expect(pushing.map((step) => step.if)).toEqual(["env.PUSH == 'true'", "env.PUSH == 'true'"]);
    expect(String(pushing.at(-1)?.with?.tags).trim().split('\n')).toEqual(['${{ env.IMAGE }}:${{ github.sha }}', '${{ env.IMAGE }}:latest']);
    expect(runs).toContain('echo "IMAGE=ghcr.io/${GITHUB_REPOSITORY,,}" >> "$GITHUB_ENV"');
  });
});
