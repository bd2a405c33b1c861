import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from '@fed/platform';
import { readSupergraph } from './load.ts';

/** A source of supergraph SDL that tells when it changes; stop() ends the watching. */
export interface SupergraphSource {
  stop(): void;
}

/**
 * Watches a supergraph file. The directory is watched, not the file: editors and deploy tools replace a file
 * by renaming another over it, and Kubernetes swaps a ConfigMap's files by relinking `..data`; a watch on the
 * file itself would be left on the old inode. Events are debounced (a copy writes in several chunks), then the
 * file is read and handed on; the reloader ignores SDL it already serves.
 */
export function watchSupergraphFile(path: string, onChange: (sdl: string) => void, logger: Logger, debounceMs = 200): SupergraphSource {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // One read at a time, in order: two that overlapped could hand on the older file last.
  let reading: Promise<void> = Promise.resolve();
  const read = async () => {
    try {
      const sdl = await readFile(path, 'utf8');
      // A file truncated by a writer that has not finished yet: its next write brings another event.
      if (!stopped && sdl.trim() !== '') onChange(sdl);
    } catch (error) {
      logger.warn({ path, err: { message: (error as Error).message } }, 'could not read the supergraph file; still serving the current one');
    }
  };
  const watcher: FSWatcher = watch(dirname(path), { persistent: false }, (_event, name) => {
    // Unnamed events (some platforms) and `..data` links count: only the content decides.
    if (name && name !== basename(path) && !name.startsWith('..')) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      reading = reading.then(read);
    }, debounceMs);
  });
  watcher.on('error', (error) => logger.warn({ path, err: { message: error.message } }, 'the supergraph file can no longer be watched'));
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}

/**
 * Polls a URL for the supergraph (an artifact store, a schema registry's CDN). With the last answer's ETag
 * sent back as If-None-Match, an unchanged supergraph costs a 304 and no parse.
 */
export function pollSupergraphUrl(url: string, intervalMs: number, onChange: (sdl: string) => void, logger: Logger, timeoutMs = 10_000): SupergraphSource {
  let etag: string | undefined;
  let stopped = false;
  let failing = false;
  let polling = false;
  const poll = async () => {
    // A slow answer must not overlap the next poll: both would go without the ETag and hand on the same SDL.
    if (polling) return;
    polling = true;
    try {
      const response = await fetch(url, { headers: etag ? { 'if-none-match': etag } : {}, signal: AbortSignal.timeout(timeoutMs) });
      if (response.status === 304) {
        failing = false;
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const sdl = await response.text();
      etag = response.headers.get('etag') ?? undefined;
      failing = false;
      if (!stopped) onChange(sdl);
    } catch (error) {
      // One line when polling starts failing, not one per interval.
      if (!failing) logger.warn({ err: { message: (error as Error).message } }, 'could not fetch the supergraph URL; still serving the current one');
      failing = true;
    } finally {
      polling = false;
    }
  };
  const timer = setInterval(() => void poll(), intervalMs);
  timer.unref();
  void poll();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}

export interface SupergraphSettings {
  path: string;
  /** Watch `path` for changes (SIGHUP reloads it whether or not). */
  watch: boolean;
  /** Fetch and poll this instead of reading `path`. */
  url?: string;
  pollMs: number;
}

/** The supergraph to start with: fetched from `url` when set (a start without it fails), else read from `path`. */
export async function loadSupergraph(settings: SupergraphSettings): Promise<string> {
  if (!settings.url) return readSupergraph(settings.path);
  const response = await fetch(settings.url, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`Cannot fetch the supergraph from SUPERGRAPH_URL: HTTP ${response.status}`);
  return response.text();
}

/**
 * For a composition root: follows the configured supergraph source (the URL polled, or the file watched and
 * reread on SIGHUP) and rolls each new version out with `reload`. Returns what stops following.
 */
export function followSupergraph(settings: SupergraphSettings, reload: (sdl: string, origin: string) => Promise<unknown>, logger: Logger): () => void {
  const apply = (origin: string) => (sdl: string) => void reload(sdl, origin);
  if (settings.url) {
    const source = pollSupergraphUrl(settings.url, settings.pollMs, apply('url'), logger);
    return () => source.stop();
  }
  const source = settings.watch ? watchSupergraphFile(settings.path, apply('file'), logger) : undefined;
  const onSignal = () => {
    readFile(settings.path, 'utf8').then(apply('signal'), (error: Error) => logger.warn({ err: { message: error.message } }, 'SIGHUP: could not read the supergraph file'));
  };
  process.on('SIGHUP', onSignal);
  return () => {
    source?.stop();
    process.off('SIGHUP', onSignal);
  };
}
