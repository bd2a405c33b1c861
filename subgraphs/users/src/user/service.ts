import { hasControlCharacters, isUniqueViolation, publicError, type Emit, type Transact } from '@fed/platform';
import type { UsersDatabase } from '../db/index.ts';
import { ErrorCode } from '../errors.ts';
import { createUserRepository, type UserRow } from './repository.ts';

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MAX_EMAIL = 254;
const MAX_NAME = 200;

function normaliseEmail(raw: string, field: string): string {
  const email = raw.trim().toLowerCase();
  if (email.length > MAX_EMAIL || !EMAIL.test(email) || hasControlCharacters(email)) {
    throw publicError(ErrorCode.BadUserInput, 'Email address is not valid', field);
  }
  return email;
}

function normaliseName(raw: string, field: string): string {
  const name = raw.trim();
  if (name.length === 0) throw publicError(ErrorCode.BadUserInput, 'Name must not be empty', field);
  if (hasControlCharacters(name)) throw publicError(ErrorCode.BadUserInput, 'Name must not contain control characters', field);
  if (name.length > MAX_NAME) throw publicError(ErrorCode.BadUserInput, `Name must be at most ${MAX_NAME} characters`, field);
  return name;
}

const emailTaken = (field: string) => publicError(ErrorCode.EmailTaken, 'A user with this email already exists', field);
const notFound = (id: number) => publicError(ErrorCode.NotFound, `No user with id ${id}`, 'id');

/**
 * User writes: validation first, then one transaction that makes the change and writes its event to the
 * outbox. A rejected write touches nothing and announces nothing. `changed` names what the write changed in
 * this subgraph's data: the user, and the list of users when one appears or goes.
 */
export function createUserService(transact: Transact<UsersDatabase>) {
  const announce = (emit: Emit, kind: 'USER_CREATED' | 'USER_UPDATED' | 'USER_DELETED', id: number) =>
    emit({ kind, userId: String(id), changed: kind === 'USER_UPDATED' ? [`User:${id}`] : [`User:${id}`, 'Query.users'] });

  return {
    async create(input: { email: string; name: string }): Promise<UserRow> {
      const email = normaliseEmail(input.email, 'input.email');
      const name = normaliseName(input.name, 'input.name');
      return transact(async (tx, emit) => {
        const row = await createUserRepository(tx).insert({ email, name });
        if (!row) throw emailTaken('input.email');
        announce(emit, 'USER_CREATED', row.id);
        return row;
      });
    },

    async update(id: number, input: { email?: string | null; name?: string | null }): Promise<UserRow> {
      const patch: { email?: string; name?: string } = {};
      if (input.email != null) patch.email = normaliseEmail(input.email, 'input.email');
      if (input.name != null) patch.name = normaliseName(input.name, 'input.name');
      try {
        return await transact(async (tx, emit) => {
          const row = await createUserRepository(tx).update(id, patch);
          if (!row) throw notFound(id);
          announce(emit, 'USER_UPDATED', row.id);
          return row;
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw emailTaken('input.email');
        throw error;
      }
    },

    async delete(id: number): Promise<number> {
      return transact(async (tx, emit) => {
        if (!(await createUserRepository(tx).delete(id))) throw notFound(id);
        announce(emit, 'USER_DELETED', id);
        return id;
      });
    },
  };
}

export type UserService = ReturnType<typeof createUserService>;
