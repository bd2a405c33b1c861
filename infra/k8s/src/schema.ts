import { fileURLToPath } from 'node:url';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import ts from 'typescript';
import { manifestId, type Manifest } from './kustomize.ts';

/** The kinds these manifests may contain, by `apiVersion/kind`; any other kind is a problem. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * What the API server would refuse in a rendered object: its kind, the OpenAPI schema (types, enums, required
 * fields, via kubernetes-models), and fields the schema does not define. The schemas allow unknown fields,
 * which the API server's strict field validation refuses and which would otherwise hide a typo such as
 * `readinesProbe` (a probe silently missing), so those are found from kubernetes-models' own type definitions.
 */
export function schemaProblems(object: Manifest): string[] {
  const id = manifestId(object);
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (!Model) return [`${id}: ${key} is not a kind these manifests may use`];
  const problems: string[] = [];
  try {
    new Model(object as never).validate();
  } catch (error) {
    problems.push(`${id}: ${error instanceof Error ? error.message : String(error)}`);
  }
  problems.push(...unknownFields(object, kindTypes().get(key), '').map((path) => `${id}: unknown field ${path}`));
  // Names become DNS labels (Service names, SUBGRAPH_URLS hosts); the schema does not check them.
  if (object.metadata.name.length > 63 || !DNS_LABEL.test(object.metadata.name)) problems.push(`${id}: name is not a DNS label`);
  for (const [label, value] of Object.entries(object.metadata.labels ?? {})) {
    if (value.length > 63 || !LABEL_VALUE.test(value)) problems.push(`${id}: label ${label} has an invalid value`);
  }
  return problems;
}

let checker: ts.TypeChecker | undefined;
let types: Map<string, ts.Type> | undefined;

/** Each kind's TypeScript interface, from a program that imports them all (built once, about half a second). */
function kindTypes(): Map<string, ts.Type> {
  if (types) return types;
  const fileName = fileURLToPath(new URL('./__kinds.ts', import.meta.url));
  const keys = Object.keys(MODELS);
  const source = [
    ...keys.map((key, i) => `import type { I${key.split('/').pop()} as T${i} } from 'kubernetes-models/${key}';`),
    `export type Kinds = { ${keys.map((key, i) => `'${key}': T${i}`).join('; ')} };`,
  ].join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName ? ts.createSourceFile(name, source, language) : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  const program = ts.createProgram([fileName], options, host);
  const errors = ts.getPreEmitDiagnostics(program, program.getSourceFile(fileName));
  if (errors.length > 0) throw new Error(`kubernetes-models types: ${ts.flattenDiagnosticMessageText(errors[0]?.messageText ?? '', ' ')}`);
  checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(fileName) as ts.SourceFile);
  const kinds = checker.getExportsOfModule(module as ts.Symbol).find((symbol) => symbol.name === 'Kinds');
  const kindsType = checker.getDeclaredTypeOfSymbol(kinds as ts.Symbol);
  types = new Map(keys.map((key) => [key, (checker as ts.TypeChecker).getTypeOfSymbol(kindsType.getProperty(key) as ts.Symbol)]));
  return types;
}

/** Paths in `value` that `type` does not declare. Leaves are left to the schema; maps (labels, data) allow any key. */
function unknownFields(value: unknown, type: ts.Type | undefined, path: string): string[] {
  if (!type || !checker || typeof value !== 'object' || value === null) return [];
  const declared = checker.getNonNullableType(type);
  if (Array.isArray(value)) {
    const element = checker.getIndexTypeOfType(declared, ts.IndexKind.Number);
    return value.flatMap((item, index) => unknownFields(item, element, `${path}[${index}]`));
  }
  const anyKey = checker.getIndexTypeOfType(declared, ts.IndexKind.String);
  const problems: string[] = [];
  for (const [key, field] of Object.entries(value)) {
    const property = declared.getProperty(key);
    const fieldPath = path ? `${path}.${key}` : key;
    if (property) problems.push(...unknownFields(field, checker.getTypeOfSymbol(property), fieldPath));
    else if (anyKey) problems.push(...unknownFields(field, anyKey, fieldPath));
    else problems.push(fieldPath);
  }
  return problems;
}
