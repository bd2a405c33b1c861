// Every example in README.md, run as written against a freshly seeded `npm start`, as a newcomer would: the curl
// commands in a shell (tokens from `npm run -s token`), the GraphQL operations through the gateway with the token
// their section names, and the TypeScript snippets as programs of their own (tsx, with graphql-ws and ws as
// installed here). The only change to any of them is the port: `localhost:4000` becomes the port this stack got.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kind, parse, print, type OperationDefinitionNode } from 'graphql';
import { graphql, waitFor } from '@fed/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStackProcess, type StackProcess } from '../src/process.ts';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const README_PORT = 'localhost:4000';

interface Block {
  lang: string;
  code: string;
  /** 1-based line of the opening fence, for failure messages. */
  line: number;
  /** The nearest heading above it. */
  section: string;
}

/** The fenced code blocks of a Markdown text, with the heading each sits under. */
function codeBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  let section = '';
  let open: { lang: string; line: number; lines: string[] } | undefined;
  markdown.split('\n').forEach((text, index) => {
    if (open) {
      if (/^```\s*$/.test(text)) {
        blocks.push({ lang: open.lang, code: open.lines.join('\n'), line: open.line, section });
        open = undefined;
      } else {
        open.lines.push(text);
      }
      return;
    }
    const fence = /^```(\S*)/.exec(text);
    if (fence) open = { lang: fence[1] ?? '', line: index + 1, lines: [] };
    else if (/^#{1,6} /.test(text)) section = text.replace(/^#+ /, '');
  });
  return blocks;
}

const BLOCKS = codeBlocks(README);
/** The commands of a shell block: a `$ ` session's prompted lines, or every line; continuations joined, comments kept. */
function shellCommands(code: string): string[] {
  const lines = code.split('\n');
  const prompted = lines.filter((line) => line.startsWith('$ ')).map((line) => line.slice(2));
  return (prompted.length > 0 ? prompted : lines).join('\n').replace(/\\\n/g, ' ').split('\n').filter((line) => line.trim() !== '');
}
/**
 * Shell examples that send a request to the running product. Only minting a token and curl run here: a block that
 * also installs, starts, deploys or benchmarks something (`npm ci && npm start`, `docker compose up`) is not one,
 * even where a comment names the product's URL.
 */
const RUNNABLE = [/^TOKEN=\$\(npm run -s token -- [^)]*\)(\s+#.*)?$/, /^curl /];
const SHELL = BLOCKS.filter((block) => block.lang === 'sh' && shellCommands(block.code).some((line) => line.startsWith('curl ') && line.includes(README_PORT)));
const OPERATIONS = BLOCKS.filter((block) => block.lang === 'graphql').flatMap((block) =>
  parse(block.code).definitions.filter((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION).map((operation) => ({ block, operation })),
);
const SNIPPETS = BLOCKS.filter((block) => block.lang === 'ts');

/**
 * What a snippet needs around it to run as a program, by the section it is in. A snippet that continues an earlier
 * one (the resume recipe uses the Subscriptions snippet's client) gets that one's imports, and the names it leaves
 * to the reader (`handle`, `freshToken`) are defined plainly. `trigger` writes what the snippet should then print.
 */
const SNIPPET_CONTEXT: Record<string, { prelude: string; trigger: string; printed: RegExp }> = {
  // A whole program as it stands (its first line says how to run it).
  Subscriptions: {
    prelude: '',
    trigger: 'mutation { placeOrder(input: { userId: "42", items: [{ sku: "README-1", quantity: 1, unitPriceCents: 500 }] }) { id } }',
    printed: /kind: 'ORDER_PLACED'/,
  },
  'Durable events': {
    prelude: [
      'const freshToken = async () => process.env.TOKEN;',
      'const handle = (event: unknown) => console.log(JSON.stringify(event));',
      "const refetchThenFollowFromNow = () => console.log('refetch');",
      "const giveUp = (code?: string) => console.log('gave up', code);",
    ].join('\n'),
    trigger: 'mutation { updateUser(id: "42", input: { name: "Followed From The README" }) { id } }',
    printed: /"kind":"USER_UPDATED"/,
  },
};

const run = promisify(execFile);

/** `TOKEN=$(npm run -s token -- ...)`, as the README shows it. */
async function tokenFromCli(...args: string[]): Promise<string> {
  const { stdout } = await run('npm', ['run', '-s', 'token', '--', ...args], { cwd: REPO_ROOT });
  return stdout.trim();
}

/** Each JSON body curl printed (the shell below ends every curl's output with a marker line). */
const CURL_END = '--readme-curl-end--';

describe('README.md examples, against a freshly seeded npm start', () => {
  let stack: StackProcess;
  let dataDir: string;
  let scratch: string;
  let port: string;
  let adminToken: string;
  const snippets: ChildProcess[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'fed-readme-'));
    // Inside the repository, so that the snippets' imports resolve to the installed graphql-ws and ws.
    mkdirSync(join(REPO_ROOT, 'node_modules/.cache'), { recursive: true });
    scratch = mkdtempSync(join(REPO_ROOT, 'node_modules/.cache/readme-snippets-'));
    stack = await startStackProcess(REPO_ROOT, { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, GATEWAY_PORT: '0', USERS_PORT: '0', ORDERS_PORT: '0', LOG_LEVEL: 'warn' });
    port = new URL(stack.gatewayUrl).port;
    adminToken = await tokenFromCli('--sub', '1', '--role', 'admin');
  });

  afterAll(async () => {
    for (const child of snippets) if (child.exitCode === null) child.kill('SIGKILL');
    await stack?.stop();
    for (const dir of [dataDir, scratch]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const onThisStack = (text: string) => text.replaceAll(README_PORT, `localhost:${port}`);

  it('finds the examples: curl commands, GraphQL operations and TypeScript snippets', () => {
    expect(SHELL.length).toBeGreaterThanOrEqual(3);
    expect(OPERATIONS.length).toBeGreaterThanOrEqual(5);
    expect(SNIPPETS.map((block) => block.section)).toEqual(expect.arrayContaining(['Subscriptions']));
    for (const block of SNIPPETS) expect(Object.keys(SNIPPET_CONTEXT), `README.md:${block.line}: a TypeScript example this test does not know how to run`).toContain(block.section);
  });

  it.each(SHELL.map((block) => [`README.md:${block.line} (${block.section})`, block] as const))('runs the shell example at %s: every curl gets data and no errors', async (_, block) => {
    // A block written as a session (`$ command`, then what it prints) runs its commands and shows its output.
    const session = /^\$ /m.test(block.code);
    const commands = shellCommands(block.code);
    const other = commands.filter((line) => !RUNNABLE.some((pattern) => pattern.test(line)));
    expect(other, `README.md:${block.line}: commands besides minting a token and curl, which this test will not run`).toEqual([]);
    const shown = session ? block.code.split('\n').filter((line) => !line.startsWith('$ ') && line.trim().startsWith('{')) : [];
    const script = [`curl() { command curl "$@"; printf '\\n${CURL_END}\\n'; }`, ...commands.map(onThisStack)].join('\n');
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd: REPO_ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME } });
    const outputs = stdout.split(`\n${CURL_END}\n`).slice(0, -1);
    expect(outputs.length, `no curl ran:\n${stdout}`).toBeGreaterThan(0);
    const bodies = outputs.map((output) => {
      // `curl -i` prints the status line and headers first.
      const body = output.includes('\r\n\r\n') ? output.slice(output.indexOf('\r\n\r\n') + 4) : output;
      if (output.startsWith('HTTP/')) expect(output.split('\r\n')[0], output).toMatch(/^HTTP\/1\.1 200 /);
      const parsed = JSON.parse(body) as { data?: Record<string, unknown> | null; errors?: unknown };
      expect(parsed.errors, body).toBeUndefined();
      expect(parsed.data, body).toBeTruthy();
      for (const [field, value] of Object.entries(parsed.data ?? {})) expect(value, `${field} in ${body}`).not.toBeNull();
      return parsed;
    });
    // What the README says the command prints is what it prints.
    if (shown.length > 0) expect(bodies).toEqual(shown.map((line) => JSON.parse(line) as unknown));
    // The retry example says its two requests print the same order: the second placed nothing.
    if (block.section === 'Retrying writes safely') {
      expect(bodies).toHaveLength(2);
      expect(bodies[1]).toEqual(bodies[0]);
    }
  });

  // In document order: the reads before the writes, as a reader goes down the page.
  it.each(OPERATIONS.map(({ block, operation }, index) => [`${index + 1}, README.md:${block.line} (${block.section})`, print(operation)] as const))(
    'runs GraphQL operation %s with the admin token the section names: data, no errors',
    async (_, operation) => {
      const response = await graphql(stack.gatewayUrl, operation, undefined, { authorization: `Bearer ${adminToken}` });
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      expect(response.status).toBe(200);
      for (const [field, value] of Object.entries(response.data ?? {})) expect(value, field).not.toBeNull();
    },
  );

  it.each(SNIPPETS.map((block) => [`README.md:${block.line} (${block.section})`, block] as const))('runs the TypeScript example at %s: it receives the event a write then makes', async (_, block) => {
    const context = SNIPPET_CONTEXT[block.section];
    if (!context) throw new Error(`README.md:${block.line}: no context for a snippet in ${block.section}`);
    const first = SNIPPETS[0]!;
    // A snippet without imports of its own continues the first one, as the README reads.
    const imports = /^import /m.test(block.code) ? '' : first.code.split('\n').filter((line) => line.startsWith('import ')).join('\n');
    // .mts, as the snippet names itself: an ES module (top-level await) whatever package it sits in.
    const file = join(scratch, `snippet-${block.line}.mts`);
    writeFileSync(file, `${imports}\n${context.prelude}\n${onThisStack(block.code)}\n`);
    // The token the snippet's own comment mints (`TOKEN=$(npm run -s token -- --sub 42)`), else the continued one's.
    const minted = /TOKEN=\$\(npm run -s token -- ([^)]*)\)/.exec(block.code) ?? /TOKEN=\$\(npm run -s token -- ([^)]*)\)/.exec(first.code);
    const token = await tokenFromCli(...(minted?.[1] ?? '--sub 42').split(/\s+/));
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: REPO_ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    snippets.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Until the snippet has subscribed, a write has no one to reach: write again until one is printed.
    await waitFor(async () => {
      expect(child.exitCode, `the snippet exited:\n${stderr}${stdout}`).toBeNull();
      const written = await graphql(stack.gatewayUrl, context.trigger, undefined, { authorization: `Bearer ${adminToken}` });
      expect(written.errors).toBeUndefined();
      await waitFor(() => expect(stdout).toMatch(context.printed), 2_000, 50);
    }, 120_000, 100);
    expect(stderr).toBe('');
    expect(child.exitCode).toBeNull();
  });
});
