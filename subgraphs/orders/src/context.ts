import type { Viewer } from '@fed/platform';
import type { OrderLoaders } from './order/loaders.ts';
import type { OrderRepository } from './order/repository.ts';
import type { OrderService } from './order/service.ts';

/** Built fresh for every request: loaders must never cache across requests or viewers. */
export interface OrdersContext {
  viewer: Viewer | null;
  loaders: OrderLoaders;
  orders: OrderRepository;
  orderService: OrderService;
}
