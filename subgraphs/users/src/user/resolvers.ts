import {
  assertAdmin,
  assertSelfOrAdmin,
  decodeCursor,
  parseFirst,
  parseId,
  publicError,
  toConnection,
  tryParseId,
} from '@fed/platform';
import { ErrorCode } from '../errors.ts';
import type { Resolvers } from '../generated/resolvers.ts';

const CURSOR_KIND = 'user';

export const userResolvers = {
  Query: {
    me: (_parent, _args, { viewer, loaders }) => (viewer ? loaders.byId.load(Number(viewer.userId)) : null),

    user: async (_parent, { id }, { loaders }) => {
      const row = await loaders.byId.load(parseId(id));
      if (!row) throw publicError(ErrorCode.NotFound, `No user with id ${id}`, 'id');
      return row;
    },

    users: async (_parent, { first, after }, { users, loaders }) => {
      const size = parseFirst(first);
      const rows = await users.list({ after: decodeCursor(CURSOR_KIND, after), limit: size + 1 });
      // Prime the loader so entity lookups later in the same request cost nothing.
      for (const row of rows) loaders.byId.prime(row.id, row);
      return toConnection(CURSOR_KIND, rows, size);
    },

    userStats: (_parent, _args, { viewer, users }) => {
      // The gateway asks for a scope too; this subgraph trusts roles only (scopes are not signed into fetches).
      assertAdmin(viewer, 'read user statistics');
      return users.stats();
    },
  },

  Mutation: {
    createUser: (_parent, { input }, { viewer, userService }) => {
      assertAdmin(viewer, 'create users');
      return userService.create(input);
    },
    updateUser: (_parent, { id, input }, { viewer, userService }) => {
      const userId = parseId(id);
      assertSelfOrAdmin(viewer, userId, 'update a user');
      return userService.update(userId, input);
    },
    deleteUser: async (_parent, { id }, { viewer, userService }) => {
      const userId = parseId(id);
      assertAdmin(viewer, 'delete users');
      return String(await userService.delete(userId));
    },
  },

  User: {
    // References come from other subgraphs; an id that can't exist resolves to null like a deleted user.
    __resolveReference: ({ id }, { loaders }) => {
      const parsed = tryParseId(id);
      return parsed === undefined ? null : loaders.byId.load(parsed);
    },
    email: (user, _args, { viewer }) => {
      assertSelfOrAdmin(viewer, user.id, 'read email');
      return user.email;
    },
  },

  UserConnection: {
    // Counting is a separate statement, so it only runs when a client asks for it.
    totalCount: (_connection, _args, { users }) => users.count(),
  },
} satisfies Resolvers;
