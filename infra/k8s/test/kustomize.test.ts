import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { render } from '../src/kustomize.ts';
import { schemaProblems } from '../src/schema.ts';

const roots: string[] = [];
afterAll(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

/** A throwaway tree of kustomizations: `{ 'base/kustomization.yaml': '…' }`. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'k8s-render-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const HEADER = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n';
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: "app:dev", command: [node]}
        - {name: side, image: "registry:5000/side@sha256:${'a'.repeat(64)}"}
`;
const base = { 'base/kustomization.yaml': `${HEADER}resources: [deployment.yaml]\n`, 'base/deployment.yaml': DEPLOYMENT };
/** Renders an overlay of `base`; its resources are just ../base unless the kustomization lists them. */
function overlay(kustomization: string, extra: Record<string, string> = {}) {
  const resources = /^resources:/m.test(kustomization) ? '' : 'resources: [../base]\n';
  return render(join(tree({ ...base, 'overlay/creds.env': 'A=b\n', ...extra, 'overlay/kustomization.yaml': `${HEADER}${resources}${kustomization}` }), 'overlay'));
}

describe('the kustomize renderer', () => {
  it('renders resources, patches, the namespace, images and a labelled Secret as kustomize does', () => {
    const objects = overlay(
      `namespace: prod
images:
  - {name: app, newName: registry.example.com/app, newTag: "1.2.3"}
secretGenerator:
  - name: creds
    envs: [creds.env]
    options: {labels: {app: web}}
generatorOptions: {disableNameSuffixHash: true}
patches:
  - target: {kind: Deployment, name: web}
    patch: |-
      - {op: test, path: /spec/template/spec/containers/0/name, value: web}
      - {op: add, path: /spec/template/spec/containers/0/args, value: [--port, "80"]}
`,
      { 'overlay/creds.env': '# comment\n\n  TOKEN=a=b c\r\nEMPTY=\n' },
    );
    expect(objects).toEqual([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'prod' },
        spec: {
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              containers: [
                { name: 'web', image: 'registry.example.com/app:1.2.3', command: ['node'], args: ['--port', '80'] },
                { name: 'side', image: `registry:5000/side@sha256:${'a'.repeat(64)}` },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'creds', namespace: 'prod', labels: { app: 'web' } },
        type: 'Opaque',
        data: { TOKEN: Buffer.from('a=b c').toString('base64'), EMPTY: '' },
      },
    ]);
  });

  it('replaces a digest-pinned image by name, keeping the registry port', () => {
    const [deployment] = overlay('images:\n  - {name: "registry:5000/side", digest: "sha256:' + 'b'.repeat(64) + '"}\n');
    expect(JSON.stringify(deployment)).toContain(`"registry:5000/side@sha256:${'b'.repeat(64)}"`);
  });

  it.each([
    ['a kustomization field it does not implement', 'commonLabels: {a: b}\n', /"commonLabels" is not implemented/],
    ['replicas', 'replicas: [{name: web, count: 2}]\n', /"replicas" is not implemented/],
    ['a strategic-merge patch', 'patches:\n  - target: {kind: Deployment}\n    patch: "spec: {replicas: 2}"\n', /only JSON6902 patches/],
    ['a patch from a file', 'patches:\n  - path: p.yaml\n    target: {kind: Deployment}\n', /patches\.path is not implemented/],
    ['a target by label', 'patches:\n  - target: {labelSelector: "a=b"}\n    patch: "[]"\n', /patches\.target\.labelSelector is not implemented/],
    ['a patch matching nothing', 'patches:\n  - target: {kind: Deployment, name: api}\n    patch: "[]"\n', /matches nothing/],
    ['a patch on a missing path', 'patches:\n  - target: {kind: Deployment}\n    patch: "[{op: replace, path: /spec/replicas, value: 2}]"\n', /OPERATION_PATH_UNRESOLVABLE|Cannot perform/],
    ['a failed test operation', 'patches:\n  - target: {kind: Deployment}\n    patch: "[{op: test, path: /metadata/name, value: api}]"\n', /Test operation failed/],
    ['hashed generator names', 'secretGenerator: [{name: s, envs: [creds.env]}]\n', /disableNameSuffixHash: true/],
    ['secret literals', 'secretGenerator: [{name: s, literals: [A=b]}]\ngeneratorOptions: {disableNameSuffixHash: true}\n', /secretGenerator\.literals is not implemented/],
    ['an image rule no container uses', 'images: [{name: ap, newTag: "1"}]\n', /image ap is used by no container/],
    ['an unquoted numeric tag', 'images: [{name: app, newTag: 1.10}]\n', /images\.newTag: expected a non-empty string/],
    ['a resource defined twice', 'resources: [../base, ../base/deployment.yaml]\n', /Deployment\/web is defined twice/],
  ])('throws on %s', (_, kustomization, error) => {
    expect(() => overlay(kustomization)).toThrow(error);
  });

  it.each([
    ['a line without "="', 'TOKEN\n', /no "="/],
    ['a quoted value', 'TOKEN="abc"\n', /quotes or trailing spaces/],
    ['trailing spaces', 'TOKEN=abc \n', /quotes or trailing spaces/],
    ['a key that is no variable name', 'MY-TOKEN=abc\n', /not a variable name/],
    ['a key set twice', 'TOKEN=a\nTOKEN=b\n', /sets TOKEN twice/],
  ])('throws on an env file with %s', (_, env, error) => {
    const kustomization = 'secretGenerator: [{name: s, envs: [creds.env]}]\ngeneratorOptions: {disableNameSuffixHash: true}\n';
    expect(() => overlay(kustomization, { 'overlay/creds.env': env })).toThrow(error);
  });

  it('throws on a Namespace named differently from the namespace it sets', () => {
    const namespace = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: staging}\n';
    expect(() => overlay('namespace: prod\nresources: [../base, ns.yaml]\n', { 'overlay/ns.yaml': namespace })).toThrow(/Namespace staging differs/);
  });

  it('reads YAML as kubectl does, so an unquoted `off` is a boolean the ConfigMap schema refuses', () => {
    const root = tree({
      'k/kustomization.yaml': `${HEADER}resources: [cm.yaml]\n`,
      'k/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {TRACING: off}\n',
    });
    const [configMap] = render(join(root, 'k'));
    expect(configMap?.data).toEqual({ TRACING: false });
    expect(schemaProblems(configMap as NonNullable<typeof configMap>).join()).toMatch(/must be string/);
  });
});
