import { readFileSync } from 'node:fs';
import type { Viewer } from '@fed/platform';

/** The arguments both reference gateways take (node:util parseArgs options). */
export const REFERENCE_OPTIONS = {
  port: { type: 'string' },
  supergraph: { type: 'string' },
  users: { type: 'string' },
  'users-secret': { type: 'string' },
  orders: { type: 'string' },
  'orders-secret': { type: 'string' },
} as const;

/** Every subgraph request a reference gateway sends is signed for this viewer: they have no auth of their own. */
export const ADMIN: Viewer = { userId: '1', role: 'admin' };

/** Where to listen, the supergraph, and each subgraph's URL and the secret to sign for it. */
export function referenceSettings(values: Partial<Record<keyof typeof REFERENCE_OPTIONS, string>>) {
  const required = (name: keyof typeof REFERENCE_OPTIONS) => {
    const value = values[name];
    if (!value) throw new Error(`--${name} is required`);
    return value;
  };
  return {
    port: Number(required('port')),
    supergraphSdl: readFileSync(required('supergraph'), 'utf8'),
    subgraphs: {
      users: { url: required('users'), secret: required('users-secret') },
      orders: { url: required('orders'), secret: required('orders-secret') },
    } as Record<string, { url: string; secret: string }>,
  };
}
