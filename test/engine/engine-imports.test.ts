/**
 * The engine's dependencies point down: it imports nothing from the
 * backends, the script runtime, the frontends or the client (backends come
 * in through a BackendRegistry), and the backend contract, the scheduler
 * seam and the statistics do not import each other in a circle.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ENGINE = join(ROOT, 'engine');
const FORBIDDEN = ['backends', 'scripts-runtime', 'server', 'client'];

/** Every specifier a module names: static imports and re-exports (types included), side-effect imports, dynamic import(). */
const SPECIFIER = /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\bimport\s+['"]([^'"]+)['"]/g;

async function engineFiles(dir = ENGINE): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return engineFiles(path);
    return Promise.resolve(/\.(ts|mts|js|mjs)$/.test(e.name) ? [path] : []);
  }));
  return nested.flat();
}

/** File -> the files (absolute) its relative specifiers resolve to, and its bare (package) specifiers. */
async function importGraph(): Promise<Map<string, { readonly local: string[]; readonly bare: string[] }>> {
  const graph = new Map<string, { local: string[]; bare: string[] }>();
  for (const file of await engineFiles()) {
    const source = await readFile(file, 'utf8');
    const local: string[] = [];
    const bare: string[] = [];
    for (const match of source.matchAll(SPECIFIER)) {
      const specifier = (match[1] ?? match[2] ?? match[3])!;
      if (specifier.startsWith('.')) local.push(resolve(dirname(file), specifier));
      else bare.push(specifier);
    }
    graph.set(file, { local, bare });
  }
  return graph;
}

test('the scan sees the engine\'s imports (it finds the contract, a type import, and a package)', async () => {
  const graph = await importGraph();
  assert.ok(graph.size > 40, `${graph.size} engine files`);
  const scheduler = graph.get(join(ENGINE, 'scheduling', 'scheduler.ts'))!;
  assert.ok(scheduler.local.includes(join(ENGINE, 'backend.ts')), 'scheduler.ts imports the contract (import type)');
  assert.ok([...graph.values()].some((g) => g.bare.includes('protobufjs')), 'bare specifiers are seen too');
});

test('engine/ imports nothing from backends/, scripts-runtime/, server/ or client/', async () => {
  const offending: string[] = [];
  for (const [file, { local }] of await importGraph()) {
    for (const target of local) {
      const top = relative(ROOT, target).split(sep)[0]!;
      if (FORBIDDEN.includes(top)) offending.push(`${relative(ROOT, file)} -> ${relative(ROOT, target)}`);
      else if (top !== 'engine') offending.push(`${relative(ROOT, file)} -> ${relative(ROOT, target)} (outside engine/)`);
    }
  }
  assert.deepEqual(offending, []);
});

/** The strongly connected components with more than one file: each is an import cycle. */
function cycles(graph: ReadonlyMap<string, { readonly local: readonly string[] }>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.local ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component);
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

test('the cycle finder finds a cycle', () => {
  const graph = new Map([['a', { local: ['b'] }], ['b', { local: ['c'] }], ['c', { local: ['a'] }], ['d', { local: ['a'] }]]);
  assert.deepEqual(cycles(graph).map((c) => [...c].sort()), [['a', 'b', 'c']]);
});

test('the backend contract, the registry, the scheduler seam and model statistics are in no import cycle', async () => {
  const seams = ['backend.ts', 'backend-registry.ts', 'infer-function.ts', join('scheduling', 'scheduler.ts'), join('observability', 'model-stats.ts')]
    .map((f) => join(ENGINE, f));
  const graph = await importGraph();
  for (const seam of seams) assert.ok(graph.has(seam), `${relative(ROOT, seam)} exists`);
  const involved = cycles(graph).filter((c) => c.some((f) => seams.includes(f))).map((c) => c.map((f) => relative(ROOT, f)));
  assert.deepEqual(involved, []);
});
