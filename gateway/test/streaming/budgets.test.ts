// One registry counts what a client holds over graphql-ws and over event streams: the budgets are per client,
// not per transport.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { acceptsEventStream } from '../../src/streaming/sse.ts';
import { createSocketRegistry, DEFAULT_SUBSCRIPTION_LIMITS, viewerClient } from '../../src/subscriptions/admission.ts';

const limits = { ...DEFAULT_SUBSCRIPTION_LIMITS, socketsPerViewer: 1, subscriptionsPerViewer: 3, documentBytesPerClient: 1_000 };
const user = viewerClient('7');

describe('the subscription budgets of one client across transports', () => {
  it('counts event streams against the subscription cap, next to the subscriptions of a socket', () => {
    const registry = createSocketRegistry(limits);
    const socket = {};
    let onSocket = 2;
    expect(registry.join(socket, user)).toBe(true);
    registry.track(socket, { count: () => onSocket, bytes: () => 0 });
    expect(registry.openStream({}, user, 10)).toBeUndefined();
    expect(registry.openStream({}, user, 10)).toBe('At most 3 subscriptions at once per user on this server');
    // The socket's third subscription (already reserved by graphql-ws) is over the cap too.
    onSocket = 3;
    expect(registry.refusal(socket, { bytes: 10 })).toBe('At most 3 subscriptions at once per user on this server');
  });

  it('does not count event streams as sockets', () => {
    const registry = createSocketRegistry(limits);
    expect(registry.openStream({}, user, 10)).toBeUndefined();
    expect(registry.join({}, user)).toBe(true);
    expect(registry.join({}, user)).toBe(false);
  });

  it('frees a stream’s place and bytes when it leaves', () => {
    const registry = createSocketRegistry(limits);
    const stream = {};
    expect(registry.openStream(stream, user, 900)).toBeUndefined();
    expect(registry.openStream({}, user, 200)).toMatch(/at most 1000 bytes of documents/);
    registry.leave(stream);
    expect(registry.openStream({}, user, 200)).toBeUndefined();
  });
});

describe('which requests ask for an event stream', () => {
  const asking = (accept?: string) => acceptsEventStream({ headers: accept === undefined ? {} : { accept } } as IncomingMessage);
  it('reads the Accept header by media type', () => {
    expect(asking('text/event-stream')).toBe(true);
    expect(asking('application/json, text/event-stream;q=0.9')).toBe(true);
    expect(asking('application/json')).toBe(false);
    expect(asking('*/*')).toBe(false);
    expect(asking(undefined)).toBe(false);
  });
});
