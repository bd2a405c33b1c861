import type { Logger, PubSub } from '@fed/platform';

export type UserEventType = 'USER_CREATED' | 'USER_UPDATED' | 'USER_DELETED';

export interface UserEvent {
  type: UserEventType;
  userId: string;
  at: string;
}

/** Per-user channels, so a subscriber (or a cache invalidator) hears only about the users it cares about. */
export const userEventsChannel = (userId: string) => `user-events:${userId}`;

/**
 * Publishes after the change is committed. Pub/sub is at-most-once, and an outage must not undo a write
 * that already happened, so a failed publish is logged, not thrown.
 */
export function createUserEventPublisher(pubsub: PubSub, logger: Logger) {
  return async (type: UserEventType, userId: number): Promise<void> => {
    const event: UserEvent = { type, userId: String(userId), at: new Date().toISOString() };
    try {
      await pubsub.publish(userEventsChannel(event.userId), event);
    } catch (error) {
      logger.warn({ err: error, event }, 'could not publish user event');
    }
  };
}

export type PublishUserEvent = ReturnType<typeof createUserEventPublisher>;
