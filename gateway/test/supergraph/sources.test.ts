// Where a running gateway hears of a new supergraph: a watched file (replaced in place, renamed over, or swapped
// as Kubernetes swaps a ConfigMap's files) and a polled URL that honours ETags. Real files and a real HTTP server.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@fed/platform';
import { waitFor } from '@fed/platform/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { pollSupergraphUrl, watchSupergraphFile, type SupergraphSource } from '../../src/supergraph/sources.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('supergraph sources', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const follow = (source: SupergraphSource) => cleanup.push(() => source.stop());
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'supergraph-source-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  it('hears a file written in place and a file renamed over it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'supergraph.graphql');
    await writeFile(path, 'one');
    const seen: string[] = [];
    follow(watchSupergraphFile(path, (sdl) => seen.push(sdl), logger, 20));
    await writeFile(path, 'two');
    await waitFor(() => expect(seen.at(-1)).toBe('two'));
    await writeFile(`${path}.tmp`, 'three');
    await rename(`${path}.tmp`, path);
    await waitFor(() => expect(seen.at(-1)).toBe('three'));
    // Other files in the directory are not the supergraph.
    const count = seen.length;
    await writeFile(join(dir, 'notes.txt'), 'unrelated');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.length).toBe(count);
  });

  it('hears a Kubernetes-style ConfigMap swap (the ..data link relinked)', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'v1'));
    await writeFile(join(dir, 'v1', 'supergraph.graphql'), 'one');
    await symlink('v1', join(dir, '..data'));
    await symlink(join('..data', 'supergraph.graphql'), join(dir, 'supergraph.graphql'));
    const seen: string[] = [];
    follow(watchSupergraphFile(join(dir, 'supergraph.graphql'), (sdl) => seen.push(sdl), logger, 20));
    await mkdir(join(dir, 'v2'));
    await writeFile(join(dir, 'v2', 'supergraph.graphql'), 'two');
    await symlink('v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await waitFor(() => expect(seen.at(-1)).toBe('two'));
  });

  it('polls a URL with If-None-Match: an unchanged supergraph costs a 304, a changed one is handed on', async () => {
    let sdl = 'one';
    let etag = '"1"';
    const asked: (string | undefined)[] = [];
    const server = createServer((req, res) => {
      asked.push(req.headers['if-none-match']);
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304).end();
        return;
      }
      res.writeHead(200, { etag }).end(sdl);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const seen: string[] = [];
    follow(pollSupergraphUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}/supergraph`, 20, (text) => seen.push(text), logger));
    await waitFor(() => expect(asked.filter((tag) => tag === '"1"').length).toBeGreaterThan(2));
    expect(seen).toEqual(['one']);
    sdl = 'two';
    etag = '"2"';
    await waitFor(() => expect(seen).toEqual(['one', 'two']));
  });
});
