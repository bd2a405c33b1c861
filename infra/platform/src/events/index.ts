import { partitionOfChannel } from './partitions.ts';

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
/**
 * The key space (a cluster hash tag) of the durable stream: its streams, id records and bookkeeping share one
 * slot, because one script appends an event to the log and to its user's stream atomically. The channels that
 * script rings belong to it too, so on a cluster they are sharded channels in that slot.
 */
export const EVENTS_KEY_SPACE = 'events';
/**
 * For RedisPubSub: the event channels belong to their partition's key space (`events` for partition 0, whose
 * channels keep their names); no other channel does.
 */
export const eventChannelShard = (channel: string): string | undefined => partitionOfChannel(channel);
/** Where a subgraph's response lists the events its request committed, for the gateway that called it. */
export const EVENTS_EXTENSION = 'domainEvents';

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

export * from './stream.ts';
export * from './partitions.ts';
export * from './redis-stream.ts';
export * from './follow.ts';
export * from './outbox.ts';
export * from './idempotency.ts';
