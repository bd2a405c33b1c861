// The explorers as a developer meets them: Apollo Sandbox on the landing page, and the bundled GraphiQL that
// the gateway serves from npm packages, driven in a real headless Chromium that may not reach anything but
// loopback, the way it behaves on a machine with no internet.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { graphql, testRedisUrl, waitFor } from '@fed/platform/testing';
import { Redis } from 'ioredis';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seed } from '../src/seed.ts';
import { startGatewayTo, startTestStack, tokenFor, type TestStack } from './harness.ts';
import { startHttpFaultProxy } from './http-proxy.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`explorer.test.ts: the browser tests are skipped because ${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run installs it).`);
}

const ARTIFACTS = fileURLToPath(new URL('../test-results/', import.meta.url));

const NESTED = `{
  users(first: 3) {
    edges {
      node {
        id
        name
        orders(first: 2) {
          edges { node { id totalCents items { sku quantity } } }
        }
      }
    }
  }
}`;

// Stands in for Apollo's Sandbox script, as if its CDN were reachable: it fills the Sandbox's place.
const SANDBOX_STAND_IN = `window.EmbeddedSandbox = function (config) {
  var frame = document.createElement('div');
  frame.id = 'sandbox-stand-in';
  frame.style.height = '100%';
  frame.textContent = 'Apollo Sandbox for ' + config.initialEndpoint;
  document.querySelector(config.target).appendChild(frame);
};`;

// NESTED with each user's orders deferred: merged, the parts are NESTED's answer.
const DEFERRED = `{
  users(first: 3) {
    edges {
      node {
        id
        name
        ... @defer(label: "orders") {
          orders(first: 2) {
            edges { node { id totalCents items { sku quantity } } }
          }
        }
      }
    }
  }
}`;

const FOLLOW = 'subscription { userEvents(userId: "2") { kind user { name } } }';

type Transport = 'ws' | 'sse';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The editor GraphiQL 3 (CodeMirror 5) hangs on its element. */
interface CodeMirrorHost {
  CodeMirror: { getValue(): string; setValue(value: string): void };
}

describe('the explorers in development', () => {
  let stack: TestStack;
  let origin: string;

  beforeAll(async () => {
    stack = await startTestStack({ mode: 'development' });
    await seed(stack.databases, { users: 3, ordersPerUser: 2 });
    origin = new URL(stack.urls.gateway).origin;
  });
  afterAll(() => stack?.teardown());

  it('offers Apollo Sandbox on the landing page, with a visible link to the bundled GraphiQL', async () => {
    const response = await fetch(stack.urls.gateway, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('https://embeddable-sandbox.cdn.apollographql.com/');
    expect(html).toMatch(/<a id="offline-explorer-link" href="\/graphiql">Open the bundled GraphiQL<\/a>/);
  });

  it('serves no GraphiQL in production', async () => {
    const production = await startGatewayTo(stack, stack.urls.users);
    try {
      const origin = new URL(production.url).origin;
      for (const path of ['/graphiql', '/graphiql/assets/graphiql.min.js']) {
        expect((await fetch(`${origin}${path}`)).status, path).toBe(404);
      }
      const landing = await (await fetch(production.url, { headers: { accept: 'text/html' } })).text();
      expect(landing).not.toContain('/graphiql');
    } finally {
      await production.stop();
    }
  });

  describe.skipIf(!hasChromium)('in headless Chromium, with every non-loopback request blocked', () => {
    let browser: Browser;
    let context: BrowserContext;
    let redis: Redis;
    let admin: string;

    const isLoopback = (url: string) => {
      const { protocol, hostname } = new URL(url);
      return protocol === 'data:' || protocol === 'blob:' || LOOPBACK.has(hostname);
    };

    beforeAll(async () => {
      admin = `Bearer ${await tokenFor('1', 'admin')}`;
      redis = new Redis(testRedisUrl());
      mkdirSync(ARTIFACTS, { recursive: true });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-quic',
          '--no-first-run',
          '--disable-sync',
          // Underneath the routes below: whatever they might not see (a websocket, the browser's own traffic)
          // goes to a proxy that refuses every connection.
          '--proxy-server=http://127.0.0.1:9',
          '--proxy-bypass-list=127.0.0.1;localhost;[::1]',
        ],
      });
      context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      await context.route('**/*', (route) => {
        const url = route.request().url();
        return isLoopback(url) ? route.continue() : route.abort('internetdisconnected');
      });
    });

    afterAll(async () => {
      await browser?.close();
      redis?.disconnect();
    });

    /**
     * A page and every request it tried to send off this machine (all of them refused), with the websockets it
     * opened and the event streams it asked for.
     */
    const watchedPage = async () => {
      const page = await context.newPage();
      const offLoopback: string[] = [];
      const sockets: string[] = [];
      const eventStreams: string[] = [];
      page.on('request', (request) => {
        if (!isLoopback(request.url())) offLoopback.push(request.url());
        if (request.headers().accept === 'text/event-stream') eventStreams.push(`${request.method()} ${request.url()}`);
      });
      page.on('websocket', (socket) => {
        sockets.push(socket.url());
        if (!isLoopback(socket.url())) offLoopback.push(socket.url());
      });
      return { page, offLoopback, sockets, eventStreams };
    };

    /** The bundled GraphiQL on a fresh page, with its script errors (CSP violations included) collected. */
    const openGraphiQL = async (at = origin) => {
      const { page, offLoopback, sockets, eventStreams } = await watchedPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      const response = await page.goto(`${at}/graphiql`);
      expect(response?.status()).toBe(200);
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
      await page.locator('button[data-name="headers"]').click();
      return { page, problems, offLoopback, sockets, eventStreams };
    };

    /** The transport choice on screen (the browser remembers it, so every test makes its own). */
    const transportChoice = (page: Page) => page.getByLabel('Subscriptions over');
    const chooseTransport = async (page: Page, transport: Transport) => {
      const choice = transportChoice(page);
      await choice.waitFor({ state: 'visible' });
      await choice.selectOption(transport);
      expect(await choice.inputValue()).toBe(transport);
    };

    const setEditor = (page: Page, selector: string, value: string) =>
      page.locator(selector).evaluate((element, text) => (element as unknown as CodeMirrorHost).CodeMirror.setValue(text), value);

    const signIn = (page: Page) => setEditor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror', JSON.stringify({ Authorization: admin }));

    /** What the result pane holds (CodeMirror draws only the visible lines, so its content comes from the editor). */
    const resultPane = (page: Page) =>
      page.locator('.result-window .CodeMirror').evaluate((element) => (element as unknown as CodeMirrorHost).CodeMirror.getValue());

    const run = (page: Page) => page.locator('.graphiql-execute-button').click();

    /** Subscriptions Redis holds for a user's channel: the gateway has really subscribed. */
    const listeners = async (channel: string) => {
      const [, count] = (await redis.pubsub('NUMSUB', `${stack.keyPrefix}${channel}`)) as [string, number];
      return Number(count);
    };

    it('loads offline, runs the nested query with an Authorization header, and shows the data from the database', async () => {
      const expected = await stack.request<{ users: { edges: { node: { name: string } }[] } }>(NESTED);
      expect(expected.errors).toBeUndefined();
      const firstName = expected.data?.users.edges[0]?.node.name;
      expect(firstName).toBeTruthy();

      const { page, problems, offLoopback } = await openGraphiQL();
      await setEditor(page, '.graphiql-query-editor .CodeMirror', NESTED);
      // Anonymous first: orders are their owner's or an admin's, so what follows proves the header was sent.
      await run(page);
      await waitFor(async () => expect(await resultPane(page)).toContain('FORBIDDEN'), 10_000);

      await signIn(page);
      await run(page);
      const shown = await waitFor(async () => {
        const text = await resultPane(page);
        expect(text).toContain('"data"');
        expect(text).not.toContain('FORBIDDEN');
        return JSON.parse(text) as { data?: unknown; errors?: unknown };
      }, 10_000);
      expect(shown.errors).toBeUndefined();
      expect(shown.data).toEqual(expected.data);
      // What the user sees on screen, not only what the editor holds.
      await page.locator('.result-window').getByText(firstName ?? '', { exact: false }).first().waitFor();

      const screenshot = `${ARTIFACTS}explorer.png`;
      await page.screenshot({ path: screenshot });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);

      expect(problems).toEqual([]);
      expect(offLoopback).toEqual([]);
      // All of that ran under the page's CSP, which is in force: an inline script (what an injection would add) does not run.
      await page.addScriptTag({ content: 'document.body.dataset.inline = "ran"' }).catch(() => undefined);
      expect(await page.locator('body').getAttribute('data-inline')).toBeNull();
      await page.close();
    });

    it('runs a subscription over the websocket: a mutation made elsewhere shows up in the result pane', async () => {
      const { page, problems, offLoopback, sockets, eventStreams } = await openGraphiQL();
      await chooseTransport(page, 'ws');
      await setEditor(page, '.graphiql-query-editor .CodeMirror', FOLLOW);
      await signIn(page);
      await run(page);
      await waitFor(async () => expect(await listeners('user-events:2')).toBe(1), 10_000);

      const renamed = await stack.request('mutation { updateUser(id: "2", input: { name: "Seen In GraphiQL" }) { id } }');
      expect(renamed.errors).toBeUndefined();
      const event = await waitFor(async () => {
        const text = await resultPane(page);
        expect(text).toContain('Seen In GraphiQL');
        return JSON.parse(text) as unknown;
      }, 10_000);
      expect(event).toEqual({ data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'Seen In GraphiQL' } } } });
      await page.screenshot({ path: `${ARTIFACTS}explorer-subscription.png` });

      // Stop: the button now stops the subscription, and the gateway lets go of the channel.
      await run(page);
      await waitFor(async () => expect(await listeners('user-events:2')).toBe(0), 10_000);

      expect(sockets).toEqual([new URL('/graphql', origin.replace(/^http/, 'ws')).href]);
      expect(eventStreams).toEqual([]);
      expect(problems).toEqual([]);
      expect(offLoopback).toEqual([]);
      await page.close();
    });

    it('runs a subscription over server-sent events when chosen: the event shows up, and stopping ends the stream', async () => {
      const { page, problems, offLoopback, sockets, eventStreams } = await openGraphiQL();
      await chooseTransport(page, 'sse');
      await setEditor(page, '.graphiql-query-editor .CodeMirror', FOLLOW);
      // A refused stream shows the gateway's GraphQL errors, as over HTTP (not graphql-sse's bare status line).
      await setEditor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror', JSON.stringify({ Authorization: 'Bearer not-a-token' }));
      await run(page);
      const refused = await waitFor(async () => {
        const text = await resultPane(page);
        expect(text).toContain('"errors"');
        return JSON.parse(text) as { errors: { extensions?: { code?: string } }[] };
      }, 10_000);
      expect(refused.errors.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      // The refusal ended the run: the button executes again.
      await page.locator('.graphiql-execute-button[aria-label^="Execute"]').waitFor();

      await signIn(page);
      await run(page);
      await waitFor(async () => expect(await listeners('user-events:2')).toBe(1), 10_000);
      // The gateway counts it as an event stream, not a websocket subscription.
      expect(stack.gateway.subscriptions?.eventStreams).toBe(1);
      expect(eventStreams).toEqual([`POST ${origin}/graphql`, `POST ${origin}/graphql`]);

      const renamed = await stack.request('mutation { updateUser(id: "2", input: { name: "Streamed To GraphiQL" }) { id } }');
      expect(renamed.errors).toBeUndefined();
      const event = await waitFor(async () => {
        const text = await resultPane(page);
        expect(text).toContain('Streamed To GraphiQL');
        return JSON.parse(text) as unknown;
      }, 10_000);
      expect(event).toEqual({ data: { userEvents: { kind: 'USER_UPDATED', user: { name: 'Streamed To GraphiQL' } } } });
      await page.screenshot({ path: `${ARTIFACTS}explorer-subscription-sse.png` });

      // Stop: the stream closes, and the gateway lets go of the channel.
      await run(page);
      await waitFor(async () => expect(await listeners('user-events:2')).toBe(0), 10_000);
      await waitFor(() => expect(stack.gateway.subscriptions?.eventStreams).toBe(0), 10_000);

      expect(sockets).toEqual([]);
      // Chromium logs the refused request itself; nothing else went wrong.
      expect(problems).toEqual(['console: Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
      expect(offLoopback).toEqual([]);
      // The choice is remembered by this browser.
      await page.reload();
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
      expect(await transportChoice(page).inputValue()).toBe('sse');
      await page.close();
    });

    it('runs a deferred query: the primary fields show while the deferred ones’ subgraph is held, then the complete answer', async () => {
      // A development gateway whose orders subgraph sits behind a gate, with a subgraph timeout longer than any
      // test: a held request ends only when the test releases it, whatever the machine's speed.
      const gate = await startHttpFaultProxy(stack.urls.orders);
      const gated = await startGatewayTo(stack, stack.urls.users, {
        subgraphUrls: { users: stack.urls.users, orders: gate.url },
        subgraphTimeoutMs: 3_600_000,
        mode: 'development',
      });
      try {
        const expected = await graphql<{ users: { edges: { node: { id: string; name: string } }[] } }>(gated.url, NESTED, undefined, stack.admin);
        expect(expected.errors).toBeUndefined();
        const primary = { users: { edges: expected.data?.users.edges.map(({ node }) => ({ node: { id: node.id, name: node.name } })) } };

        const { page, problems, offLoopback } = await openGraphiQL(new URL(gated.url).origin);
        await setEditor(page, '.graphiql-query-editor .CodeMirror', DEFERRED);
        await signIn(page);
        gate.hold();
        await run(page);
        // The users are on screen while orders has not answered yet.
        const first = await waitFor(async () => {
          const text = await resultPane(page);
          expect(text).toContain('"data"');
          return JSON.parse(text) as unknown;
        }, 10_000);
        expect(first).toEqual({ data: primary });
        expect(gate.held()).toBeGreaterThan(0);
        // Still running: the button stops it.
        await page.locator('.graphiql-execute-button[aria-label^="Stop"]').waitFor();
        await page.screenshot({ path: `${ARTIFACTS}explorer-defer-primary.png` });

        gate.release();
        const complete = await waitFor(async () => {
          const text = await resultPane(page);
          expect(text).toContain('totalCents');
          return JSON.parse(text) as unknown;
        }, 10_000);
        expect(complete).toEqual({ data: expected.data });
        // The answer is complete: the execute button is back (no stop button of a running operation).
        await page.locator('.graphiql-execute-button[aria-label^="Execute"]').waitFor();
        await page.screenshot({ path: `${ARTIFACTS}explorer-defer.png` });

        expect(problems).toEqual([]);
        expect(offLoopback).toEqual([]);
        await page.close();
      } finally {
        // Held requests go on before the gateway stops, so that it has nothing to wait for.
        gate.release();
        await gated.stop();
        await gate.close();
      }
    });

    it('online, shows Apollo Sandbox with the link to the bundled GraphiQL visible above it', async () => {
      const { page } = await watchedPage();
      await page.route('https://embeddable-sandbox.cdn.apollographql.com/**', (route) =>
        route.fulfill({ contentType: 'text/javascript', body: SANDBOX_STAND_IN }),
      );
      await page.goto(stack.urls.gateway);
      await page.locator('#sandbox-stand-in').waitFor();
      const link = page.getByRole('link', { name: 'Open the bundled GraphiQL' });
      // Nothing covers the link (a trial click fails on an element another one hides), and the Sandbox starts below it.
      await link.click({ trial: true, timeout: 2_000 });
      const box = await link.boundingBox();
      const sandbox = await page.locator('#embeddableSandbox').boundingBox();
      expect(sandbox?.y).toBeGreaterThanOrEqual((box?.y ?? Infinity) + (box?.height ?? 0));
      await page.screenshot({ path: `${ARTIFACTS}landing-page.png` });

      await link.click();
      await page.waitForURL(`${origin}/graphiql`);
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
      await page.close();
    });

    it('takes a browser that opens the GraphQL endpoint offline to the working GraphiQL', async () => {
      const { page, offLoopback } = await watchedPage();
      await page.goto(stack.urls.gateway);
      await page.waitForURL(`${origin}/graphiql`, { timeout: 10_000 });
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
      // It did try the Sandbox (that is what a developer with internet gets), and was refused.
      expect(offLoopback.some((url) => url.startsWith('https://embeddable-sandbox.cdn.apollographql.com/'))).toBe(true);
      await page.close();
    });
  });
});
