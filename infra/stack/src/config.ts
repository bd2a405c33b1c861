import { gatewayConfigSchema } from '@fed/gateway/config';
import { ordersConfigSchema } from '@fed/orders/config';
import { usersConfigSchema } from '@fed/users/config';
import { z } from 'zod';

/** One process, three services: the union of their settings, parsed once. */
export const stackConfigSchema = usersConfigSchema
  .extend(ordersConfigSchema.shape)
  .extend(gatewayConfigSchema.shape)
  .omit({ USERS_URL: true })
  .extend({
    /** Seed a small dataset when the users database is empty (the first start). */
    SEED_ON_FIRST_START: z
      .enum(['true', 'false'])
      .default('true')
      .transform((value) => value === 'true'),
  });

export type StackConfig = z.infer<typeof stackConfigSchema>;
