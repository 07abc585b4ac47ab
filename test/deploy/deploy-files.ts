/**
 * The files under deploy/, read once: every YAML document and JSON file,
 * parsed, with the path it came from. Tests find manifests here by kind.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');

/**
 * YAML and JSON files under deploy/ that are not Kubernetes objects, each
 * checked by its own test. Every other document must be an object with a
 * validator, so nothing new escapes validation unnoticed.
 */
export const NOT_MANIFESTS: ReadonlySet<string> = new Set([
  'kubernetes/prometheus-adapter-rules.yaml',
  'grafana/switchyard-dashboard.json',
  'metric-names.json',
]);

export interface DeployDocument {
  /** Path relative to deploy/, with '/' separators. */
  readonly file: string;
  /** Position of the document in a multi-document YAML file, from 0. */
  readonly index: number;
  readonly object: Record<string, unknown>;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

/** Every file under deploy/, relative to it, sorted. */
export function deployFiles(): string[] {
  return walk(DEPLOY_DIR).map((p) => relative(DEPLOY_DIR, p).split('\\').join('/')).sort();
}

export function readDeployFile(file: string): string {
  return readFileSync(join(DEPLOY_DIR, file), 'utf8');
}

/** Parses one YAML or JSON file into its documents; a syntax error throws, naming the file. */
export function parseDeployFile(file: string): unknown[] {
  const text = readDeployFile(file);
  if (file.endsWith('.json')) return [JSON.parse(text) as unknown];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) return [];
  return docs.flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`deploy/${file} document ${i}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    return value === null || value === undefined ? [] : [value];
  });
}

export function isYamlOrJson(file: string): boolean {
  return /\.(ya?ml|json)$/.test(file);
}

/** Every Kubernetes-style document (apiVersion + kind) under deploy/, in file order. */
export function deployManifests(): DeployDocument[] {
  return deployFiles()
    .filter((file) => isYamlOrJson(file) && !NOT_MANIFESTS.has(file))
    .flatMap((file) => parseDeployFile(file).map((object, index) => {
      if (typeof object !== 'object' || object === null || Array.isArray(object)) {
        throw new Error(`deploy/${file} document ${index} is not an object`);
      }
      return { file, index, object: object as Record<string, unknown> };
    }));
}

/** The one manifest of `kind` (and name, if given); throws when there is not exactly one. */
export function manifestOf(kind: string, name?: string): DeployDocument {
  const found = deployManifests().filter((d) => d.object['kind'] === kind
    && (name === undefined || (d.object['metadata'] as { name?: string } | undefined)?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` named ${name}` : ''} under deploy/, found ${found.length}`);
  return found[0]!;
}
