import { DOWNSTREAM_PUBLIC_CODES } from '@fed/gateway';
import { ErrorCode as OrdersErrorCode } from '@fed/orders';
import { ErrorCode as UsersErrorCode } from '@fed/users';
import { describe, expect, it } from 'vitest';

describe('error codes across the graph', () => {
  it('lets every code a subgraph raises on purpose through the gateway, so clients can branch on it', () => {
    const raised = new Set<string>([...Object.values(UsersErrorCode), ...Object.values(OrdersErrorCode)]);
    raised.delete('INTERNAL_SERVER_ERROR');
    expect(DOWNSTREAM_PUBLIC_CODES).toEqual(expect.arrayContaining([...raised]));
  });
});
