import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** Where an asset comes from: a file of an installed npm package, or one of ours next to this module. */
type Source = { package: string; file: string } | { local: string };

/**
 * The only names the explorer serves: a request for anything else is a 404, so no path a client sends ever
 * reaches the file system. The order is the order the page loads scripts in (GraphiQL's UMD build expects
 * the React and ReactDOM globals).
 */
export const ASSET_SOURCES = {
  'graphiql.min.css': { source: { package: 'graphiql', file: 'graphiql.min.css' }, type: CSS },
  'explorer.css': { source: { local: 'client/explorer.css' }, type: CSS },
  'react.production.min.js': { source: { package: 'react', file: 'umd/react.production.min.js' }, type: JS },
  'react-dom.production.min.js': { source: { package: 'react-dom', file: 'umd/react-dom.production.min.js' }, type: JS },
  'graphql-ws.min.js': { source: { package: 'graphql-ws', file: 'umd/graphql-ws.min.js' }, type: JS },
  'graphql-sse.min.js': { source: { package: 'graphql-sse', file: 'umd/graphql-sse.min.js' }, type: JS },
  'graphiql.min.js': { source: { package: 'graphiql', file: 'graphiql.min.js' }, type: JS },
  'multipart.js': { source: { local: 'client/multipart.js' }, type: JS },
  'explorer.js': { source: { local: 'client/explorer.js' }, type: JS },
} as const satisfies Record<string, { source: Source; type: string }>;

export type AssetName = keyof typeof ASSET_SOURCES;

export const isAssetName = (name: string): name is AssetName => Object.hasOwn(ASSET_SOURCES, name);

export interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  /** A digest of the content: the ETag, and the `?v=` that lets browsers keep the file for good. */
  version: string;
}

const require = createRequire(import.meta.url);

// Packages' `exports` maps (react's, graphql-ws's) hide their umd/ folders from require.resolve, but every one
// of them exports its package.json: the files sit next to it.
const packagePath = (source: { package: string; file: string }) => join(dirname(require.resolve(`${source.package}/package.json`)), source.file);

/**
 * Where the build put a copy of an asset that comes from a package (VENDOR_DIR next to this module): the image
 * ships those copies instead of the packages and everything they depend on.
 */
export const VENDOR_DIR = 'vendor';

async function read(name: AssetName): Promise<string> {
  const { source } = ASSET_SOURCES[name];
  if ('local' in source) return readFile(fileURLToPath(new URL(source.local, import.meta.url)), 'utf8');
  try {
    return await readFile(fileURLToPath(new URL(`${VENDOR_DIR}/${name}`, import.meta.url)), 'utf8');
  } catch (error) {
    // Run from the sources (development, tests): the installed package has it.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return readFile(packagePath(source), 'utf8');
  }
}

/** The installed file an asset is copied from at build time (infra/docker/scripts/compile.mjs). */
export const vendoredFrom = (name: AssetName): string | undefined => {
  const { source } = ASSET_SOURCES[name];
  return 'package' in source ? packagePath(source) : undefined;
};

// Browsers fetch source maps only with developer tools open; the maps are not served, so the
// reference would only produce a 404 and a warning there.
const withoutSourceMap = (text: string) => text.replace(/\n\/[/*]# sourceMappingURL=[^\n]*\s*$/, '\n');

const gzipped = promisify(gzip);

async function load(name: AssetName): Promise<Asset> {
  const body = Buffer.from(withoutSourceMap(await read(name)), 'utf8');
  return {
    type: ASSET_SOURCES[name].type,
    body,
    // GraphiQL's bundle is 3.5 MB and compresses to a fifth: worth it as soon as the browser is not on this host.
    gzipped: await gzipped(body),
    version: createHash('sha256').update(body).digest('base64url').slice(0, 16),
  };
}

export type Assets = Record<AssetName, Asset>;

/**
 * Every asset, read and compressed on first use and then kept in memory: a production gateway, or a
 * development one nobody opens the explorer on, never reads them. A failed read is retried on the next
 * request rather than remembered.
 */
export function assetStore(): () => Promise<Assets> {
  let loading: Promise<Assets> | undefined;
  return () =>
    (loading ??= (async () => {
      const names = Object.keys(ASSET_SOURCES) as AssetName[];
      const loaded = await Promise.all(names.map(load));
      return Object.fromEntries(names.map((name, index) => [name, loaded[index]])) as Assets;
    })().catch((error: unknown) => {
      loading = undefined;
      throw error;
    }));
}
