import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { render, type Manifest } from '../src/index.ts';

export const K8S_DIR = fileURLToPath(new URL('..', import.meta.url));
export const OVERLAYS = readdirSync(`${K8S_DIR}/overlays`);
export const BASE_PROVIDES = ['Secret/federated-graph-secrets'];

/** A strong stand-in for each development-only placeholder: the same placeholder always gets the same value. */
export const strengthen = (text: string) =>
  text.replace(/development-only-[\w-]+/g, (placeholder) => createHash('sha256').update(placeholder).digest('hex'));

/**
 * Renders a kustomization the way `kubectl apply -k` would once secrets.env exists: from the committed example,
 * as is, or with its development-only placeholders replaced by strong values.
 */
export function renderWithExampleSecrets(dir: string, { strong = true } = {}): Manifest[] {
  return render(`${K8S_DIR}/${dir}`, {
    readFile: (path) => {
      if (!path.endsWith('/secrets.env')) return readFileSync(path, 'utf8');
      const example = readFileSync(`${path}.example`, 'utf8');
      return strong ? strengthen(example) : example;
    },
  });
}
