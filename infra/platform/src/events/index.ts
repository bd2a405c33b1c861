import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { PubSub } from '../pubsub/index.ts';

export type DomainEventKind =
  | 'USER_CREATED'
  | 'USER_UPDATED'
  | 'USER_DELETED'
  | 'ORDER_PLACED'
  | 'ORDER_CANCELLED'
  | 'ORDER_STATUS_CHANGED';

/** A committed change, as a subgraph announces it. Every event concerns one user. */
export interface DomainEvent {
  id: string;
  kind: DomainEventKind;
  userId: string;
  orderId?: string;
  occurredAt: string;
  /** The subgraph that committed the change. */
  source: string;
  /**
   * What the commit changed in the source's own data, in schema terms: entities (`User:42`) and root fields
   * whose answer changed (`Query.users`). Caches purge by these without knowing the domain.
   */
  changed: string[];
}

export type NewDomainEvent = Omit<DomainEvent, 'id' | 'occurredAt' | 'source'>;

/** Every event, for consumers that watch all users (cache invalidation, admin streams). */
export const DOMAIN_EVENTS_CHANNEL = 'domain-events';
/** One user's events, so a subscriber hears only about the user it follows. */
export const userEventsChannel = (userId: string) => `user-events:${userId}`;
/** Where a subgraph's response lists the events its request committed, for the gateway that called it. */
export const EVENTS_EXTENSION = 'domainEvents';

export type PublishEvent = (event: NewDomainEvent) => Promise<DomainEvent>;

/**
 * Publishes after the change is committed. Pub/sub is at-most-once and an outage must not undo a write that
 * already happened, so a failed publish is logged, not thrown. `recorded` collects the request's events, which
 * the subgraph returns to its caller: the gateway purges its cache before it answers a mutation.
 */
export function createEventPublisher(pubsub: PubSub, logger: Logger, source: string) {
  return (recorded: DomainEvent[]): PublishEvent =>
    async (change) => {
      const event: DomainEvent = { id: randomUUID(), occurredAt: new Date().toISOString(), source, ...change };
      recorded.push(event);
      try {
        await Promise.all([pubsub.publish(userEventsChannel(event.userId), event), pubsub.publish(DOMAIN_EVENTS_CHANNEL, event)]);
      } catch (error) {
        logger.warn({ err: error, event }, 'could not publish a domain event');
      }
      return event;
    };
}

/** Narrows what arrives over pub/sub or in a response extension; anything else is ignored. */
export function isDomainEvent(value: unknown): value is DomainEvent {
  const event = value as Partial<DomainEvent> | null;
  return (
    typeof event === 'object' &&
    event !== null &&
    typeof event.id === 'string' &&
    typeof event.kind === 'string' &&
    typeof event.userId === 'string' &&
    typeof event.source === 'string' &&
    Array.isArray(event.changed) &&
    event.changed.every((tag) => typeof tag === 'string')
  );
}
