import { assertAdmin, assertSelfOrAdmin, channelIterator, DOMAIN_EVENTS_CHANNEL, parseId, tryParseId, userEventsChannel, type DomainEvent } from '@fed/platform';
import type { UsersContext } from '../context.ts';
import type { Resolvers } from '../generated/resolvers.ts';

/** An order this subgraph only refers to; the gateway fetches its fields from orders. */
export interface OrderReference {
  id: string;
}

export const userEventResolvers = {
  Subscription: {
    userEvents: {
      // Authorized once, when the stream opens; the viewer cannot change on a signed subscription.
      subscribe: (_parent, { userId }, { viewer, pubsub }) => {
        if (userId === undefined || userId === null) {
          assertAdmin(viewer, "follow every user's events");
          return channelIterator<DomainEvent>(pubsub, DOMAIN_EVENTS_CHANNEL);
        }
        const id = parseId(userId, 'userId');
        assertSelfOrAdmin(viewer, id, "follow this user's events");
        return channelIterator<DomainEvent>(pubsub, userEventsChannel(String(id)));
      },
      // One context serves the whole stream: without this, the loader would answer every later event with the
      // user as the first event found them.
      resolve: (event: DomainEvent, _args: unknown, { loaders }: UsersContext) => {
        loaders.byId.clearAll();
        return event;
      },
    },
  },

  UserEvent: {
    occurredAt: (event) => new Date(event.occurredAt),
    // The user as they are now: null once deleted.
    user: (event, _args, { loaders }) => {
      const id = tryParseId(event.userId);
      return id === undefined ? null : loaders.byId.load(id);
    },
    order: (event) => (event.orderId ? { id: event.orderId } : null),
  },
} satisfies Resolvers;
