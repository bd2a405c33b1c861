import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase, DataDirInUseError } from '../src/db/index.ts';

describe('an embedded PGlite data directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'pglite-lock-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('cannot be opened twice at once (that would corrupt it), and can be reopened once closed', async () => {
    const dataDir = join(root, 'users');
    const first = await createDatabase({ location: { dataDir }, schema: {} });
    await expect(createDatabase({ location: { dataDir }, schema: {} })).rejects.toBeInstanceOf(DataDirInUseError);
    await first.close();
    const again = await createDatabase({ location: { dataDir }, schema: {} });
    await again.close();
  });

  it('is taken over when the process that locked it is gone', async () => {
    const dataDir = join(root, 'orders');
    // A pid far above any real one: the owner of this lock died without cleaning up.
    writeFileSync(`${dataDir}.pid`, '4194303');
    const handle = await createDatabase({ location: { dataDir }, schema: {} });
    await handle.close();
  });
});
