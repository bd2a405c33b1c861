import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Kind, parse } from 'graphql';
import { z } from 'zod';

/** One operation of the safelist, with the variables its document declares (anything else a client sends is dropped). */
export interface TrustedDocument {
  id: string;
  name: string;
  type: 'query' | 'mutation' | 'subscription';
  body: string;
  declaredVariables: ReadonlySet<string>;
}

/** The safelist: documents by their sha256 (hex), the id Apollo Client sends as `persistedQuery.sha256Hash`. */
export type TrustedDocuments = ReadonlyMap<string, TrustedDocument>;

export const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

// What `@apollo/generate-persisted-query-manifest` writes (persisted-query-manifest.json).
const manifestSchema = z.object({
  format: z.literal('apollo-persisted-query-manifest'),
  version: z.literal(1),
  operations: z.array(
    z.object({
      id: z.string().regex(/^[0-9a-f]{64}$/, 'is not a sha256 in lowercase hex'),
      name: z.string(),
      type: z.enum(['query', 'mutation', 'subscription']),
      body: z.string().min(1),
    }),
  ),
});

/**
 * Reads a manifest and checks it whole: a body that does not parse, or whose sha256 is not its id, fails the
 * start rather than leave an operation that clients can never run (or run under the wrong id).
 */
export function parseTrustedManifest(text: string): TrustedDocuments {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('the trusted documents manifest is not valid JSON');
  }
  const manifest = manifestSchema.safeParse(json);
  if (!manifest.success) {
    const issue = manifest.error.issues[0];
    throw new Error(`the trusted documents manifest is not an Apollo persisted query manifest: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? ''}`.trim());
  }
  const documents = new Map<string, TrustedDocument>();
  for (const [index, operation] of manifest.data.operations.entries()) {
    if (sha256Hex(operation.body) !== operation.id) {
      throw new Error(`operation ${index + 1} (${operation.name}) of the trusted documents manifest: its id is not the sha256 of its body`);
    }
    let declaredVariables: Set<string>;
    try {
      declaredVariables = new Set(
        parse(operation.body, { noLocation: true }).definitions.flatMap((definition) =>
          definition.kind === Kind.OPERATION_DEFINITION ? (definition.variableDefinitions ?? []).map((variable) => variable.variable.name.value) : [],
        ),
      );
    } catch {
      throw new Error(`operation ${index + 1} (${operation.name}) of the trusted documents manifest does not parse`);
    }
    documents.set(operation.id, { ...operation, declaredVariables });
  }
  return documents;
}

/** The manifest at `path` (TRUSTED_DOCUMENTS_PATH), read once at start-up. */
export function loadTrustedDocuments(path: string): TrustedDocuments {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`TRUSTED_DOCUMENTS_PATH: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    return parseTrustedManifest(text);
  } catch (error) {
    throw new Error(`TRUSTED_DOCUMENTS_PATH (${path}): ${(error as Error).message}`);
  }
}
