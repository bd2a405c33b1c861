import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** One event as a subscriber received it. */
export interface Received {
  id: string;
  kind: string;
  /** For ORDER_* events: the order. */
  orderId?: string;
  /** Which subscription (1 for the first, 2 after the first resume…) delivered it. */
  attempt: number;
}

export interface Subscriber {
  name: string;
  userId: string;
  gateway: string;
  received: Received[];
  /** Why it had to subscribe again, each time: error codes, socket errors, completions. */
  resumes: string[];
  stop(): void;
}

const QUERY = 'subscription ($userId: ID!, $after: ID) { userEvents(userId: $userId, after: $after) { id kind order { id } } }';
const RESUME_DELAY_MS = 250;

/**
 * Follows one user's events through one gateway as the README's resume recipe does: graphql-ws with `ws` as its
 * WebSocket, the client's own retries off, and on an error code, a socket error or an end, a new subscription
 * `after` the id of the last event handled. The subscription it replaces is closed first, so that two never run
 * side by side. Nothing is deduplicated here: what it receives is what a client would show.
 */
export function subscribe(options: { name: string; url: string; authorization: string; userId: string }): Subscriber {
  const { name, url, authorization, userId } = options;
  const received: Received[] = [];
  const resumes: string[] = [];
  let lastId: string | undefined;
  let stopped = false;
  let attempt = 0;
  let unsubscribe: (() => void) | undefined;
  let pending: NodeJS.Timeout | undefined;
  const client: Client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization },
    retryAttempts: 0,
  });

  const resume = (why: string) => {
    if (stopped) return;
    resumes.push(why);
    unsubscribe?.();
    unsubscribe = undefined;
    clearTimeout(pending);
    pending = setTimeout(follow, RESUME_DELAY_MS);
  };

  function follow() {
    if (stopped) return;
    attempt += 1;
    const mine = attempt;
    // Ends for a subscription already replaced are that subscription's, not this one's.
    const current = () => mine === attempt;
    unsubscribe = client.subscribe<{ userEvents: { id: string; kind: string; order: { id: string } | null } }>(
      { query: QUERY, variables: { userId, after: lastId ?? null } },
      {
        next: ({ data, errors }) => {
          if (!current()) return;
          const code = errors?.[0]?.extensions?.code;
          if (errors || !data) return resume(`error ${String(code ?? errors?.[0]?.message ?? 'without data')}`);
          const event = data.userEvents;
          received.push({ id: event.id, kind: event.kind, ...(event.order && { orderId: event.order.id }), attempt: mine });
          lastId = event.id;
        },
        error: (error) => current() && resume(`socket: ${describe(error)}`),
        complete: () => current() && resume('completed'),
      },
    );
  }

  follow();
  return {
    name,
    userId,
    gateway: url,
    received,
    resumes,
    stop: () => {
      stopped = true;
      clearTimeout(pending);
      unsubscribe?.();
      void client.dispose();
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'code' in error) return `close ${String((error as { code: unknown }).code)} ${String((error as { reason?: unknown }).reason ?? '')}`.trim();
  return String(error);
}
