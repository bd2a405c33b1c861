import { readFileSync } from 'node:fs';

/** Reads a supergraph file, failing with a message that names the file rather than a bare ENOENT. */
export function readSupergraph(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`Cannot read the supergraph at ${path}: ${(error as Error).message}. Run \`npm run compose\`?`);
  }
}
