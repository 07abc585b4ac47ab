/**
 * TypeScript model scripts to JavaScript for an isolate, with esbuild.
 * Types are stripped and the module becomes a function of (module,
 * exports). A script may import npm packages installed in the server's own
 * node_modules: they are bundled into its code at load, as their browser or
 * plain-JavaScript builds. Anything else that survives type erasure is
 * refused at compile time, with its location: relative files (a script is
 * one file), Node's built-in modules (the isolate has none), and a package
 * that needs one (the message names the package and the module).
 * Results are cached by a hash of the source: instances and versions with
 * the same code compile once.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Message, type Plugin } from 'esbuild';

export interface CompiledScript {
  /** The file, for messages and stack traces. */
  readonly file: string;
  /** A function body taking (module, exports); `module.exports.default` is the model class. */
  readonly code: string;
  readonly sha256: string;
}

/** A script that does not compile: the message reads `<file>:<line>:<column>: <problem>`. */
export class ScriptCompileError extends Error {
  override readonly name = 'ScriptCompileError';
}

const cache = new Map<string, Promise<string>>();
/** Distinct sources kept compiled; more than this many and the oldest is dropped. */
const CACHE_LIMIT = 256;

/** Where bare imports are looked up: the server's own folder, whose node_modules holds the installed packages. */
const PACKAGE_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

const NODE_MODULES = `${PACKAGE_ROOT}${sep}node_modules${sep}`;
/** The same folder with links resolved, as esbuild reports the files it resolved (node_modules may be a link). */
const NODE_MODULES_REAL = (() => {
  try {
    return `${realpathSync(NODE_MODULES)}${sep}`;
  } catch {
    return NODE_MODULES;
  }
})();

/** Whether a resolved file lies in an installed package: under node_modules, in a folder that is a package's (not `.package-lock.json`, `.bin`). */
function insidePackage(file: string): boolean {
  const root = file.startsWith(NODE_MODULES) ? NODE_MODULES : file.startsWith(NODE_MODULES_REAL) ? NODE_MODULES_REAL : undefined;
  if (root === undefined) return false;
  const first = file.slice(root.length).split(sep)[0] ?? '';
  return first !== '' && !first.startsWith('.');
}
/** Marks the plugin's own resolve() call, which it lets esbuild answer. */
const RESOLVING = Symbol('resolving');

/** The most code a script may compile to, its packages included: every isolate of the model holds a copy. */
export const MAX_COMPILED_BYTES = 16 * 1024 * 1024;

const BUILTINS: ReadonlySet<string> = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (path: string): boolean => path.startsWith('node:') || BUILTINS.has(path) || BUILTINS.has(path.split('/')[0]!);

/** The package a file of node_modules belongs to (`@scope/name` or `name`), for messages. */
function packageOf(file: string): string | undefined {
  const parts = file.split(sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return undefined;
  return parts[at + 1]!.startsWith('@') ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1];
}

/**
 * What a script may import: npm packages (resolved by esbuild from the
 * server's node_modules), and inside them anything but Node's built-ins.
 */
const sandboxImports: Plugin = {
  name: 'switchyard-sandbox-imports',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.kind === 'entry-point') return undefined;
      // The script itself is stdin: its importer path is not inside node_modules.
      const fromScript = packageOf(args.importer) === undefined;
      if (isBuiltin(args.path)) {
        const owner = fromScript ? undefined : packageOf(args.importer);
        return {
          errors: [{
            text: owner
              ? `scripts cannot import package '${owner}': it imports '${args.path}', a Node module the sandbox does not have. Use a package written for browsers or plain JavaScript`
              : `scripts cannot import '${args.path}': the sandbox has none of Node's modules. Reach other models through ctx.infer; npm packages written for browsers or plain JavaScript can be imported`,
          }],
        };
      }
      if (fromScript && (args.path.startsWith('.') || args.path.startsWith('/'))) {
        return {
          errors: [{ text: `scripts cannot import '${args.path}': a script is one file. Keep imports of other files type-only (import type ...), and reach other models through ctx.infer` }],
        };
      }
      // A package path never climbs: `lodash/../.package-lock.json` is no package's file.
      if (!args.path.startsWith('.') && args.path.split('/').some((part) => part === '..' || part === '.')) {
        return { errors: [{ text: `scripts cannot import '${args.path}': a package path has no '.' or '..' parts` }] };
      }
      if (args.pluginData === RESOLVING) return undefined;
      // Resolved as esbuild would, then held to node_modules: no path out of it into the server's own files.
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: RESOLVING });
      if (resolved.errors.length > 0 || resolved.external) return resolved;
      if (!insidePackage(resolved.path)) {
        return { errors: [{ text: `scripts cannot import '${args.path}': it leads out of the installed packages (node_modules)` }] };
      }
      return resolved;
    });
  },
};

export async function compileScript(file: string, source: string): Promise<CompiledScript> {
  const sha256 = createHash('sha256').update(source).digest('hex');
  let code = cache.get(sha256);
  if (!code) {
    code = transpile(file, source);
    cache.set(sha256, code);
    code.catch(() => cache.delete(sha256));
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  }
  return { file, code: await code, sha256 };
}

/** How many distinct sources are compiled and kept (for tests of the cache). */
export function compiledScriptCount(): number {
  return cache.size;
}

async function transpile(file: string, source: string): Promise<string> {
  try {
    const result = await build({
      stdin: { contents: source, loader: 'ts', sourcefile: file, resolveDir: PACKAGE_ROOT },
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'neutral',
      // Packages' builds for browsers, then their module and main entries: never a build that needs Node.
      mainFields: ['browser', 'module', 'main'],
      conditions: ['browser', 'import', 'default'],
      target: 'es2022',
      logLevel: 'silent',
      plugins: [sandboxImports],
    });
    const code = result.outputFiles[0]!.text;
    if (code.length > MAX_COMPILED_BYTES) {
      throw new ScriptCompileError(`${file}: compiles to ${code.length} bytes with the packages it imports, over the ${MAX_COMPILED_BYTES} bytes a script may be`);
    }
    return code;
  } catch (err) {
    if (err instanceof ScriptCompileError) throw err;
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors || errors.length === 0) throw err;
    throw new ScriptCompileError(errors.map((e) => describe(file, e)).join('\n'));
  }
}

/** Where and what, never the line itself: a message must not carry a file's contents to whoever asked for the load. */
function describe(file: string, message: Message): string {
  const at = message.location;
  // A problem inside an imported package is the script's, at the package's line.
  if (at && at.file !== file && at.file.includes('node_modules')) {
    return `${file}: ${message.text} (at ${at.file.slice(at.file.lastIndexOf('node_modules'))}:${at.line}:${at.column + 1})`;
  }
  const where = at ? `${file}:${at.line}:${at.column + 1}` : file;
  return `${where}: ${message.text}`;
}
