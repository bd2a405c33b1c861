import type { PubSub, Viewer } from '@fed/platform';
import type { UserLoaders } from './user/loaders.ts';
import type { UserRepository } from './user/repository.ts';
import type { UserService } from './user/service.ts';

/** Built fresh for every request: loaders must never cache across requests or viewers. */
export interface UsersContext {
  viewer: Viewer | null;
  loaders: UserLoaders;
  users: UserRepository;
  userService: UserService;
  /** Where committed events are heard, for subscriptions. */
  pubsub: PubSub;
}
