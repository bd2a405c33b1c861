import {
  assertAdmin,
  assertSelfOrAdmin,
  CursorExpiredError,
  followEvents,
  InvalidCursorError,
  parseId,
  publicError,
  recordSubscriptionCursor,
  tryParseId,
  type Feed,
  type Followed,
} from '@fed/platform';
import type { UsersContext } from '../context.ts';
import { ErrorCode } from '../errors.ts';
import type { Resolvers } from '../generated/resolvers.ts';

/** An order this subgraph only refers to; the gateway fetches its fields from orders. */
export interface OrderReference {
  id: string;
}

const expired = () =>
  publicError(ErrorCode.CursorExpired, 'Events after this id are no longer kept. Refetch, then subscribe without `after`.', 'after');

export const userEventResolvers = {
  Subscription: {
    userEvents: {
      // Authorized once, when the stream opens; the viewer cannot change on a signed subscription.
      subscribe: async (_parent, { userId, after }, context) => {
        const { viewer, events } = context;
        let feed: Feed = {};
        if (userId === undefined || userId === null) {
          assertAdmin(viewer, "follow every user's events");
        } else {
          const id = parseId(userId, 'userId');
          assertSelfOrAdmin(viewer, id, "follow this user's events");
          feed = { userId: String(id) };
        }
        try {
          // From an explicit position even when asked "from now": a subscription renewed for its signed lifetime
          // then resumes exactly there, though no event came meanwhile.
          const from = after ?? (await events.stream.last(feed));
          recordSubscriptionCursor(context, from);
          return await followEvents(events.stream, events.pubsub, feed, from);
        } catch (error) {
          if (error instanceof CursorExpiredError) throw expired();
          if (error instanceof InvalidCursorError) throw publicError(ErrorCode.BadUserInput, '`after` is not an event id', 'after');
          throw publicError(ErrorCode.EventsUnavailable, 'Events are unavailable right now; try again.');
        }
      },
      // One context serves the whole stream: without clearing, the loader would answer every later event with
      // the user as the first event found them.
      resolve: (event: Followed, _args: unknown, context: UsersContext) => {
        // A reader that fell further behind than the retention window gets this once, and the stream ends.
        if (event instanceof CursorExpiredError) throw expired();
        context.loaders.byId.clearAll();
        recordSubscriptionCursor(context, event.cursor ?? event.position);
        return event;
      },
    },
  },

  UserEvent: {
    // Every user's events over several partitions resume from a cursor naming them all, not one position.
    id: (event) => event.cursor ?? event.position,
    occurredAt: (event) => new Date(event.occurredAt),
    // The user as they are now: null once deleted.
    user: (event, _args, { loaders }) => {
      const id = tryParseId(event.userId);
      return id === undefined ? null : loaders.byId.load(id);
    },
    order: (event) => (event.orderId ? { id: event.orderId } : null),
  },
} satisfies Resolvers;
