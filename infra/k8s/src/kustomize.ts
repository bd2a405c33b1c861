import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { parseAllDocuments } from 'yaml';

/**
 * A strict renderer for the small subset of kustomize these manifests use, because no kustomize binary runs
 * offline. It implements `resources`, `namespace`, `images`, `patches` (JSON6902 with a target),
 * `secretGenerator` (env files, optionally labelled) and `generatorOptions.disableNameSuffixHash: true`, and
 * throws on anything else, so that it can never silently misread an overlay someone extends.
 */

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface RenderOptions {
  /** Reads a file the kustomization names (the tests swap secrets.env for its committed example). */
  readFile?: (path: string) => string;
}

type Json = Record<string, unknown>;

const FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches', 'secretGenerator', 'generatorOptions']);
const CLUSTER_SCOPED = new Set(['Namespace']);

export const manifestId = (m: Manifest) => `${m.kind}/${m.metadata.namespace ? `${m.metadata.namespace}/` : ''}${m.metadata.name}`;

export function render(dir: string, options: RenderOptions = {}): Manifest[] {
  const read = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const file = join(dir, 'kustomization.yaml');
  const [kustomization] = parseYaml(read(file), file);
  const k = record(kustomization, file);
  for (const key of Object.keys(k)) if (!FIELDS.has(key)) throw new Error(`${file}: "${key}" is not implemented by this renderer`);
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') throw new Error(`${file}: not a v1beta1 Kustomization`);

  const objects: Manifest[] = [];
  for (const entry of strings(k.resources ?? [], `${file}: resources`)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) objects.push(...render(path, options));
    else objects.push(...parseYaml(read(path), path).map((doc) => manifest(doc, path)));
  }
  objects.push(...generateSecrets(k, dir, file, read));
  // kustomize's order of built-in transformers: patches, then namespace, then images.
  let result = applyPatches(objects, k.patches ?? [], file);
  if (k.namespace !== undefined) result = setNamespace(result, str(k.namespace, `${file}: namespace`));
  if (k.images !== undefined) result = setImages(result, k.images, file);

  const seen = new Set<string>();
  for (const object of result) {
    const id = manifestId(object);
    if (seen.has(id)) throw new Error(`${file}: ${id} is defined twice`);
    seen.add(id);
  }
  return result;
}

/** YAML 1.1, as kubectl reads plain manifests: an unquoted `off` or `yes` is a boolean there, not a string. */
function parseYaml(text: string, file: string): unknown[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as unknown;
    })
    .filter((doc) => doc !== null && doc !== undefined);
}

function manifest(doc: unknown, file: string): Manifest {
  const m = record(doc, file);
  const metadata = record(m.metadata, `${file}: metadata`);
  str(m.apiVersion, `${file}: apiVersion`);
  str(m.kind, `${file}: kind`);
  str(metadata.name, `${file}: metadata.name`);
  return m as Manifest;
}

function generateSecrets(k: Json, dir: string, file: string, read: (path: string) => string): Manifest[] {
  if (k.secretGenerator === undefined) {
    if (k.generatorOptions !== undefined) throw new Error(`${file}: generatorOptions without a generator`);
    return [];
  }
  // Hashed names would need every reference rewritten, which this renderer does not do.
  const generatorOptions = k.generatorOptions === undefined ? {} : record(k.generatorOptions, `${file}: generatorOptions`);
  if (Object.keys(generatorOptions).join() !== 'disableNameSuffixHash' || generatorOptions.disableNameSuffixHash !== true) {
    throw new Error(`${file}: generatorOptions must be exactly { disableNameSuffixHash: true }`);
  }
  return list(k.secretGenerator, `${file}: secretGenerator`).map((entry) => {
    const generator = record(entry, `${file}: secretGenerator`);
    for (const key of Object.keys(generator)) {
      if (!['name', 'envs', 'type', 'options'].includes(key)) throw new Error(`${file}: secretGenerator.${key} is not implemented`);
    }
    const generatorLabels = generator.options === undefined ? undefined : record(generator.options, `${file}: secretGenerator.options`);
    for (const key of Object.keys(generatorLabels ?? {})) {
      if (key !== 'labels') throw new Error(`${file}: secretGenerator.options.${key} is not implemented`);
    }
    const labels = generatorLabels?.labels === undefined ? undefined : record(generatorLabels.labels, `${file}: secretGenerator.options.labels`);
    const name = str(generator.name, `${file}: secretGenerator.name`);
    const data: Record<string, string> = {};
    for (const env of strings(generator.envs, `${file}: secretGenerator.envs`)) {
      for (const [key, value] of parseEnvFile(read(join(dir, env)), join(dir, env))) {
        if (key in data) throw new Error(`${file}: secret ${name} sets ${key} twice`);
        data[key] = Buffer.from(value, 'utf8').toString('base64');
      }
    }
    const type = generator.type === undefined ? 'Opaque' : str(generator.type, `${file}: secretGenerator.type`);
    const metadata = labels ? { name, labels: labels as Record<string, string> } : { name };
    return { apiVersion: 'v1', kind: 'Secret', metadata, type, data };
  });
}

/**
 * kustomize's env-file rules: leading whitespace trimmed, `#` lines and blank lines skipped, KEY=VALUE split at
 * the first `=` with the value taken verbatim. What kustomize would do surprisingly is refused: a line without
 * `=` (kustomize reads the variable from the shell running it), quotes or trailing spaces (kept literally).
 */
export function parseEnvFile(text: string, file: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/^\uFEFF/, '').trimStart();
    if (line === '' || line.startsWith('#')) return;
    const at = line.indexOf('=');
    const where = `${file}:${index + 1}`;
    if (at < 0) throw new Error(`${where}: no "=" (kustomize would read the value from its own environment)`);
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`${where}: "${key}" is not a variable name`);
    if (/^["']|["']$|\s$/.test(value)) throw new Error(`${where}: ${key} has quotes or trailing spaces, which kustomize keeps`);
    pairs.push([key, value]);
  });
  return pairs;
}

function applyPatches(objects: Manifest[], patches: unknown, file: string): Manifest[] {
  let result = objects;
  for (const entry of list(patches, `${file}: patches`)) {
    const p = record(entry, `${file}: patches`);
    for (const key of Object.keys(p)) if (!['patch', 'target'].includes(key)) throw new Error(`${file}: patches.${key} is not implemented`);
    const target = record(p.target, `${file}: patches.target`);
    for (const key of Object.keys(target)) {
      if (!['group', 'version', 'kind', 'name'].includes(key)) throw new Error(`${file}: patches.target.${key} is not implemented`);
    }
    const [ops] = parseYaml(str(p.patch, `${file}: patches.patch`), `${file}: patch`);
    if (!Array.isArray(ops)) throw new Error(`${file}: only JSON6902 patches (a list of operations) are implemented`);
    let matched = 0;
    result = result.map((object) => {
      if (!matches(object, target)) return object;
      matched += 1;
      // validate: throws on a malformed operation, a path that does not exist, or a failed `test`.
      return fastJsonPatch.applyPatch(structuredClone(object), ops as Operation[], true, true).newDocument;
    });
    // kustomize would skip a patch that matches nothing; a typo in a target must not pass unnoticed.
    if (matched === 0) throw new Error(`${file}: patch target ${JSON.stringify(target)} matches nothing`);
  }
  return result;
}

function matches(object: Manifest, target: Json): boolean {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  return (
    (target.kind === undefined || target.kind === object.kind) &&
    (target.name === undefined || target.name === object.metadata.name) &&
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version)
  );
}

function setNamespace(objects: Manifest[], namespace: string): Manifest[] {
  return objects.map((object) => {
    if (!CLUSTER_SCOPED.has(object.kind)) return { ...object, metadata: { ...object.metadata, namespace } };
    // kustomize versions differ on whether they rename a Namespace object; with equal names they agree.
    if (object.kind === 'Namespace' && object.metadata.name !== namespace) {
      throw new Error(`Namespace ${object.metadata.name} differs from the kustomization's namespace ${namespace}`);
    }
    return object;
  });
}

function setImages(objects: Manifest[], images: unknown, file: string): Manifest[] {
  const rules = list(images, `${file}: images`).map((entry) => {
    const rule = record(entry, `${file}: images`);
    for (const key of Object.keys(rule)) {
      if (!['name', 'newName', 'newTag', 'digest'].includes(key)) throw new Error(`${file}: images.${key} is not implemented`);
    }
    if (rule.newTag !== undefined && rule.digest !== undefined) throw new Error(`${file}: images: newTag and digest both set`);
    return rule;
  });
  const used = new Set<unknown>();
  const result = objects.map((object) => {
    if (!['Deployment', 'Job'].includes(object.kind)) return object;
    const copy = structuredClone(object);
    const podSpec = record(record(record(copy.spec, 'spec').template, 'template').spec, 'pod spec');
    for (const field of ['containers', 'initContainers']) {
      for (const container of (podSpec[field] ?? []) as Json[]) {
        const image = str(container.image, `${manifestId(object)}: image`);
        const name = imageName(image);
        const rule = rules.find((r) => r.name === name);
        if (!rule) continue;
        used.add(rule);
        const newName = rule.newName === undefined ? name : str(rule.newName, `${file}: images.newName`);
        const suffix =
          rule.digest !== undefined
            ? `@${str(rule.digest, `${file}: images.digest`)}`
            : rule.newTag !== undefined
              ? `:${str(rule.newTag, `${file}: images.newTag`)}`
              : image.slice(name.length);
        container.image = `${newName}${suffix}`;
      }
    }
    return copy;
  });
  for (const rule of rules) if (!used.has(rule)) throw new Error(`${file}: image ${String(rule.name)} is used by no container`);
  return result;
}

/** The image without its tag and digest: `registry:5000/app:1.0@sha256:…` → `registry:5000/app`. */
function imageName(image: string): string {
  const ref = image.split('@')[0] ?? '';
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
}

function record(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where}: expected a mapping`);
  return value as Json;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list`);
  return value;
}

function str(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${where}: expected a non-empty string`);
  return value;
}

function strings(value: unknown, where: string): string[] {
  return list(value, where).map((item) => str(item, where));
}
