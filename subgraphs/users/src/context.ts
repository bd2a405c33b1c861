import type { EventStream, PubSub, Viewer } from '@fed/platform';
import type { UserLoaders } from './user/loaders.ts';
import type { UserRepository } from './user/repository.ts';
import type { UserService } from './user/service.ts';

/** Built fresh for every request: loaders must never cache across requests or viewers. */
export interface UsersContext {
  viewer: Viewer | null;
  loaders: UserLoaders;
  users: UserRepository;
  userService: UserService;
  /** Where committed events are kept (to resume from) and rung in (to hear them live), for subscriptions. */
  events: { stream: EventStream; pubsub: PubSub };
}
