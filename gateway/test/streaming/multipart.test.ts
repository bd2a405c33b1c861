// Which requests ask for Apollo's multipart subscriptions, as Apollo Client 4 and Apollo's docs spell the header.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { acceptsMultipartSubscription } from '../../src/streaming/multipart.ts';
import { acceptsEventStream } from '../../src/streaming/sse.ts';

const request = (accept?: string) => ({ headers: accept === undefined ? {} : { accept } }) as IncomingMessage;

describe('which requests ask for multipart subscriptions', () => {
  it('reads a multipart/mixed range with subscriptionSpec 1.0, quoted or not', () => {
    // What Apollo Client 4's HttpLink sends for a subscription.
    expect(acceptsMultipartSubscription(request('multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9'))).toBe(true);
    // What Apollo's protocol documentation quotes.
    expect(acceptsMultipartSubscription(request('multipart/mixed;subscriptionSpec="1.0", application/json'))).toBe(true);
    expect(acceptsMultipartSubscription(request('Multipart/Mixed; boundary="graphql"; SubscriptionSpec="1.0"'))).toBe(true);
  });

  it('leaves other requests to the HTTP path (@defer’s multipart, JSON, other versions)', () => {
    expect(acceptsMultipartSubscription(request('multipart/mixed;deferSpec=20220824,application/json'))).toBe(false);
    expect(acceptsMultipartSubscription(request('multipart/mixed'))).toBe(false);
    expect(acceptsMultipartSubscription(request('multipart/mixed;subscriptionSpec=2.0'))).toBe(false);
    expect(acceptsMultipartSubscription(request('application/json'))).toBe(false);
    expect(acceptsMultipartSubscription(request('*/*'))).toBe(false);
    expect(acceptsMultipartSubscription(request(undefined))).toBe(false);
  });

  it('is not an event stream, nor the other way round', () => {
    expect(acceptsEventStream(request('multipart/mixed;subscriptionSpec=1.0'))).toBe(false);
    expect(acceptsMultipartSubscription(request('text/event-stream'))).toBe(false);
  });
});
