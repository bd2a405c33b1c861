import { publicError } from '../errors.ts';

export const ROLES = ['user', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is asking, as the gateway verified it. Null means an anonymous viewer. */
export interface Viewer {
  userId: string;
  role: Role;
  /**
   * The token's `scope` claim (space-separated, as OAuth 2 writes it), for the gateway's `@requiresScopes` and
   * override labels. Not signed into subgraph fetches: subgraphs decide by role.
   */
  scopes?: readonly string[];
}

export const isRole = (value: unknown): value is Role => ROLES.includes(value as Role);

export const FORBIDDEN = 'FORBIDDEN';

export const isAdmin = (viewer: Viewer | null): boolean => viewer?.role === 'admin';

/** The user themselves, or an admin. */
export const isSelfOrAdmin = (viewer: Viewer | null, userId: string | number): boolean =>
  viewer !== null && (viewer.role === 'admin' || viewer.userId === String(userId));

/**
 * Field- and operation-level denials: the field becomes null with a FORBIDDEN error and the rest of the
 * response is intact. Anonymous viewers get the same code; the message says what would be allowed.
 */
export function assertAdmin(viewer: Viewer | null, action: string): asserts viewer is Viewer {
  if (!isAdmin(viewer)) throw publicError(FORBIDDEN, `Only an admin may ${action}`);
}

export function assertSelfOrAdmin(viewer: Viewer | null, userId: string | number, action: string): asserts viewer is Viewer {
  if (!isSelfOrAdmin(viewer, userId)) throw publicError(FORBIDDEN, `Only the user it belongs to or an admin may ${action}`);
}
