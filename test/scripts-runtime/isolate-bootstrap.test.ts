/**
 * The isolate bootstrap is a checked module: scripts-runtime/isolate-bootstrap/bootstrap.ts. These tests hold that
 * the text an isolate runs is made from that file with its types stripped and nothing else changed (no helpers, no
 * renamed identifiers: the hardening depends on the code's exact shape), that a real isolate runs that text, and that
 * the typechecker covers the file, against the isolate's built-ins alone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { compileScript } from '../../scripts-runtime/compile.ts';
import { IsolatedVmSandbox } from '../../scripts-runtime/isolated-vm-sandbox.ts';
import {
  BOOTSTRAP_FUNCTION, BOOTSTRAP_MODULE, bootstrapFromModule, isolateBootstrapSource,
} from '../../scripts-runtime/isolate-bootstrap/bootstrap-source.ts';

const root = resolve(import.meta.dirname, '../..');
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const run = promisify(execFile);

/** Runs tsc; its exit status and what it printed. */
async function typecheck(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(tsc, args, { cwd: root, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: (failed.stdout ?? '') + (failed.stderr ?? '') };
  }
}

describe('isolate bootstrap: made from bootstrap.ts', () => {
  test('the text is the module with its types stripped, wrapped into the closure that calls it with $0 to $8', async () => {
    const module = await readFile(BOOTSTRAP_MODULE, 'utf8');
    const text = await isolateBootstrapSource();
    assert.equal(text, await bootstrapFromModule(module));
    assert.ok(text.startsWith(`'use strict';\nfunction ${BOOTSTRAP_FUNCTION}(hostInfer, hostLog, factory, hostRespond, settings, hostInferInline, hostSettled, hostStream, hostStreamInline) {\n`), text.slice(0, 200));
    assert.ok(text.endsWith(`\nreturn ${BOOTSTRAP_FUNCTION}($0, $1, $2, $3, $4, $5, $6, $7, $8);\n`));
    // Types are gone (it parses as a plain JavaScript closure body, not run here); the module's own code is there, word for word.
    assert.doesNotThrow(() => new Function('$0', '$1', '$2', '$3', '$4', '$5', '$6', '$7', '$8', text));
    assert.doesNotMatch(text, /\b(interface|satisfies)\b/);
    assert.ok(text.includes('const uncurry = Function.prototype.bind.bind(Function.prototype.call);'));
    // The text follows the module: a change to the module is a change to the text.
    const changed = await bootstrapFromModule(module.replace('const MAX_DEPTH = 64;', 'const MAX_DEPTH = 65;'));
    assert.notEqual(changed, text);
    assert.ok(changed.includes('const MAX_DEPTH = 65;') && text.includes('const MAX_DEPTH = 64;'));
  });

  test('esbuild adds no helper and renames nothing: every identifier in the text is one the module spells', async () => {
    const module = await readFile(BOOTSTRAP_MODULE, 'utf8');
    const text = await isolateBootstrapSource();
    const words = new Set(module.match(/[A-Za-z_$][\w$]*/g));
    // What esbuild made of the module, without the closure's first line and its last (the call).
    const made = text.slice(text.indexOf('\n'), text.lastIndexOf('\nreturn '));
    const foreign = [...new Set(made.match(/[A-Za-z_$][\w$]*/g))].filter((word) => !words.has(word));
    assert.deepEqual(foreign, []);
    assert.doesNotMatch(text, /\b__(?!proto__)\w+/, 'no esbuild helper (__defProp, __name, __async ...)');
    // Names a script can see stay as written.
    for (const name of ['function log(...parts)', 'function send(response, options)', 'function isCancelled()']) assert.ok(text.includes(name), name);
  });

  test('an isolate runs that text: a function the bootstrap hands the script is a slice of it', async () => {
    const script = await compileScript('probe.ts', `
      export default class {
        async execute(requests: unknown[], ctx: { log: { info: unknown } }) {
          return requests.map(() => ({ outputs: { TEXT: { datatype: 'BYTES', shape: [1], data: [String(ctx.log.info)] } } }));
        }
      }`);
    const sandbox = await IsolatedVmSandbox.create(script, {
      name: 'probe', version: '1', instance: 'probe_0', config: {}, inferLimit: { max: 1, code: 'LIMIT', message: 'limit' },
    }, {
      memoryLimitMb: 16, executeTimeoutMs: 5000, maxTransferMb: 1, logLineMaxChars: 100, logLinesPerExecute: 10, allowWebAssembly: false, inlineSliceMs: 0,
    }, { infer: async () => ({ error: 'no models here' }), stream: async () => ({ error: 'no models here' }), log: () => {} });
    try {
      const [response] = await sandbox.execute([{ inputs: {}, parameters: {} }], [], 1) as { outputs: { TEXT: { data: string[] } } }[];
      const logText = response!.outputs.TEXT.data[0]!;
      assert.match(logText, /^function log\(\.\.\.parts\) \{/);
      assert.ok((await isolateBootstrapSource()).includes(logText), logText);
    } finally {
      await sandbox.dispose();
    }
  });
});

describe('isolate bootstrap: typechecked', () => {
  test('npm run typecheck checks bootstrap.ts in the project and again on its own, against the isolate\'s built-ins', async () => {
    const scripts = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).scripts as Record<string, string>;
    assert.match(scripts.typecheck!, /tsc --noEmit -p tsconfig\.json/);
    assert.match(scripts.typecheck!, /tsc --noEmit -p scripts-runtime\/isolate-bootstrap\/tsconfig\.json/);
    const project = await typecheck('--listFilesOnly', '-p', 'tsconfig.json');
    assert.equal(project.code, 0, project.output);
    assert.ok(project.output.split('\n').map((line) => resolve(root, line.trim())).includes(BOOTSTRAP_MODULE), 'bootstrap.ts is in the project');
    const alone = await typecheck('--noEmit', '-p', 'scripts-runtime/isolate-bootstrap/tsconfig.json');
    assert.equal(alone.code, 0, alone.output);
  });

  test('the isolate\'s check refuses what an isolate lacks: Node and DOM globals, and wrong types', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bootstrap-typecheck-'));
    try {
      await writeFile(join(dir, 'probe.ts'), 'export const exit = process.exit;\nexport const title = document.title;\nexport const n: number = \'text\';\n');
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
        extends: join(root, 'scripts-runtime', 'isolate-bootstrap', 'tsconfig.json'), files: [join(dir, 'probe.ts')],
      }));
      const probe = await typecheck('--noEmit', '-p', join(dir, 'tsconfig.json'));
      assert.notEqual(probe.code, 0);
      assert.match(probe.output, /Cannot find name 'process'/);
      assert.match(probe.output, /Cannot find name 'document'/);
      assert.match(probe.output, /Type 'string' is not assignable to type 'number'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
