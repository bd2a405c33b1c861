import { hasControlCharacters, isUniqueViolation, publicError, type PublishEvent } from '@fed/platform';
import { ErrorCode } from '../errors.ts';
import type { UserRepository, UserRow } from './repository.ts';

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
 * User writes: validation first, then one statement, then the event. A rejected write touches nothing.
 * `changed` names what the write changed in this subgraph's data: the user, and the list of users when one
 * appears or goes.
 */
export function createUserService(repository: UserRepository, publish: PublishEvent) {
  const announce = (kind: 'USER_CREATED' | 'USER_UPDATED' | 'USER_DELETED', id: number) =>
    publish({ kind, userId: String(id), changed: kind === 'USER_UPDATED' ? [`User:${id}`] : [`User:${id}`, 'Query.users'] });

  return {
    async create(input: { email: string; name: string }): Promise<UserRow> {
      const email = normaliseEmail(input.email, 'input.email');
      const name = normaliseName(input.name, 'input.name');
      const row = await repository.insert({ email, name });
      if (!row) throw emailTaken('input.email');
      await announce('USER_CREATED', row.id);
      return row;
    },

    async update(id: number, input: { email?: string | null; name?: string | null }): Promise<UserRow> {
      const patch: { email?: string; name?: string } = {};
      if (input.email != null) patch.email = normaliseEmail(input.email, 'input.email');
      if (input.name != null) patch.name = normaliseName(input.name, 'input.name');
      let row: UserRow | undefined;
      try {
        row = await repository.update(id, patch);
      } catch (error) {
        if (isUniqueViolation(error)) throw emailTaken('input.email');
        throw error;
      }
      if (!row) throw notFound(id);
      await announce('USER_UPDATED', row.id);
      return row;
    },

    async delete(id: number): Promise<number> {
      if (!(await repository.delete(id))) throw notFound(id);
      await announce('USER_DELETED', id);
      return id;
    },
  };
}

export type UserService = ReturnType<typeof createUserService>;
