/**
 * TypeScript model scripts to JavaScript for an isolate, with esbuild.
 * Types are stripped and the module becomes a function of (module,
 * exports), the files it imports bundled in, so the isolate needs no
 * module loader. A script may import:
 *   - its own model's files (lib/*.ts, .js, .mjs, .json), by a path
 *     relative to the importing file; each must lie inside the model's
 *     folder once symbolic links are followed;
 *   - npm packages installed in the server's own node_modules, as their
 *     browser or plain-JavaScript builds;
 *   - a package's `.txt` files (a dictionary, a label list), as a string,
 *     whether or not its exports map lists them.
 * Anything else that survives type erasure is refused at compile time,
 * with its location: absolute paths, files out of the model's folder,
 * Node's built-in modules (the isolate has none), and a package that needs
 * one (the message names the package and the module). Without a model
 * folder (compileScript's third argument) a script is one file.
 * Results are cached by a hash of the source; one that read model files
 * keeps their hashes and is compiled again once one changes. So instances
 * and versions with the same code compile once, and a reload after an edit
 * of a model file sees the edit.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageFile, PackageFileError } from '../engine/repository/package-file.ts';
import { build, type Loader, type Message, type OnResolveArgs, type OnResolveResult, type Plugin, type PluginBuild } from 'esbuild';

export interface CompiledScript {
  /** The file, for messages and stack traces. */
  readonly file: string;
  /** A function body taking (module, exports); `module.exports.default` is the model class. */
  readonly code: string;
  /** The hash of the script's source (the files it imports are not in it). */
  readonly sha256: string;
}

/** Where a script lies on disk, so that it may import its own model's files. */
export interface ScriptFolder {
  /** The model's folder (its config and version folders): every file the script imports must lie inside it. */
  readonly modelDir: string;
  /** The folder holding the script, where its relative imports start. */
  readonly scriptDir: string;
  /** What messages call the model's folder: the model's name. */
  readonly name: string;
}

/** A script that does not compile: the message reads `<file>:<line>:<column>: <problem>`. */
export class ScriptCompileError extends Error {
  override readonly name = 'ScriptCompileError';
}

/** What a compile read of a model's folder, to tell later whether compiling again would read the same. */
interface ModelFilesRead {
  /** Each relative import as written, joined to its folder, and where it led once links were followed (undefined: nowhere). */
  readonly links: ReadonlyMap<string, string | undefined>;
  /** Each model file bundled in (real path), and the hash of what it held. */
  readonly hashes: ReadonlyMap<string, string>;
}

interface Compiled {
  readonly code: string;
  /** Where its relative imports started (real path); undefined when compiled without a model folder. */
  readonly scriptDir: string | undefined;
  /** Empty when the script imports no model file, and then the code fits any folder. */
  readonly read: ModelFilesRead;
}

/**
 * Keyed by the source's hash while compiling, and kept there when the
 * script read no model file; one that did moves to a key of the source and
 * its folder, since the same text elsewhere imports other files.
 */
const cache = new Map<string, Promise<Compiled>>();
/** Distinct compiled scripts kept; more than this many and the oldest is dropped. */
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

/** The loader of each kind of model file a script may import; other files of its folder (models, configs) are not code. */
const MODEL_FILE_LOADERS: Readonly<Record<string, Loader>> = { '.ts': 'ts', '.mts': 'ts', '.js': 'js', '.mjs': 'js', '.cjs': 'js', '.json': 'json' };

/** Whether `file` is `root` or inside it; both real paths. */
const inside = (root: string, file: string): boolean => file === root || file.startsWith(root + sep);

/** The model folder of one compile, and what the compile read of it. */
interface ModelFiles {
  /** The model's folder, links resolved. */
  readonly root: string;
  readonly name: string;
  readonly links: Map<string, string | undefined>;
  readonly hashes: Map<string, string>;
}

/** A package file a script may import as text data: `import keys from 'package/dict/keys.txt'` gives its contents. */
const PACKAGE_TEXT_EXTENSION = '.txt';
/** Marks a resolved path as a package's text file, loaded as a string. */
const PACKAGE_TEXT = Symbol('package text');

/** Marks a resolved path as a model file, which the plugin reads itself (to hash exactly what is compiled). */
const MODEL_FILE = Symbol('model file');

/**
 * What a script may import: from the script and its model's files, other
 * files of the model's folder and npm packages (resolved from the server's
 * node_modules); inside packages, anything of node_modules but Node's
 * built-ins.
 */
function sandboxImports(model: ModelFiles | undefined): Plugin {
  return {
    name: 'switchyard-sandbox-imports',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point' || args.pluginData === RESOLVING) return undefined;
        // The script (stdin) and the model's files are the author's; everything else here is a package's.
        const owner = insidePackage(args.importer) ? packageOf(args.importer) : undefined;
        if (isBuiltin(args.path)) {
          return {
            errors: [{
              text: owner
                ? `scripts cannot import package '${owner}': it imports '${args.path}', a Node module the sandbox does not have. Use a package written for browsers or plain JavaScript`
                : `scripts cannot import '${args.path}': the sandbox has none of Node's modules. Reach other models through ctx.infer; npm packages written for browsers or plain JavaScript can be imported`,
            }],
          };
        }
        const isFile = args.path.startsWith('.') || isAbsolute(args.path);
        if (owner === undefined && isFile) return resolveModelFile(b, model, args);
        // A package's text data (a dictionary, a label list) comes in as a string, whatever its exports map lists.
        if (owner === undefined && extname(args.path) === PACKAGE_TEXT_EXTENSION) {
          return packageFile(args.path).then(
            (path): OnResolveResult => ({ path, pluginData: PACKAGE_TEXT }),
            (err: unknown): OnResolveResult => ({ errors: [{ text: `scripts cannot import '${args.path.slice(0, 200)}': ${err instanceof PackageFileError ? err.problem : String(err)}` }] }),
          );
        }
        // A package path never climbs: `lodash/../.package-lock.json` is no package's file.
        if (!isFile && args.path.split('/').some((part) => part === '..' || part === '.')) {
          return { errors: [{ text: `scripts cannot import '${args.path}': a package path has no '.' or '..' parts` }] };
        }
        // Resolved as esbuild would (the author's bare imports from the server's folder, never the model's), then held to node_modules.
        const resolveDir = owner === undefined ? PACKAGE_ROOT : args.resolveDir;
        const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir, importer: args.importer, pluginData: RESOLVING });
        if (resolved.errors.length > 0 || resolved.external) return resolved;
        if (!insidePackage(resolved.path)) {
          return { errors: [{ text: `scripts cannot import '${args.path}': it leads out of the installed packages (node_modules)` }] };
        }
        return resolved;
      });
      b.onLoad({ filter: /.*/ }, async (args) => {
        if (args.pluginData === PACKAGE_TEXT) return { contents: await readFile(args.path, 'utf8'), loader: 'text' };
        if (args.pluginData !== MODEL_FILE || !model) return undefined;
        const bytes = await readFile(args.path);
        model.hashes.set(args.path, sha256Of(bytes));
        return { contents: bytes, loader: MODEL_FILE_LOADERS[extname(args.path)]! };
      });
    },
  };
}

/** A relative import of the script or of a model file: a file of the model's folder, links followed, of a kind that is code. */
async function resolveModelFile(b: PluginBuild, model: ModelFiles | undefined, args: OnResolveArgs): Promise<OnResolveResult> {
  const refuse = (why: string): OnResolveResult => ({ errors: [{ text: `scripts cannot import '${args.path}': ${why}` }] });
  if (!model) return refuse('a script compiled without its model folder is one file. Keep imports of other files type-only (import type ...), and reach other models through ctx.infer');
  if (isAbsolute(args.path)) return refuse("an absolute path. Import the model's own files by a path relative to the importing file ('../lib/x.ts')");
  // esbuild answers with links already followed: where the path as written leads is kept apart, to notice a link moved later.
  const written = resolve(args.resolveDir, args.path);
  model.links.set(written, await realpath(written).catch(() => undefined));
  const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: RESOLVING });
  if (resolved.errors.length > 0) return resolved;
  const real = resolved.external ? undefined : await realpath(resolved.path).catch(() => undefined);
  if (real === undefined || !inside(model.root, real)) {
    return refuse(`it leads out of the folder of model '${model.name}'; a script may import its own model's files and npm packages`);
  }
  if (MODEL_FILE_LOADERS[extname(real)] === undefined) {
    return refuse(`not a file a script can import: use ${Object.keys(MODEL_FILE_LOADERS).join(', ')}`);
  }
  return { path: real, pluginData: MODEL_FILE };
}

export async function compileScript(file: string, source: string, folder?: ScriptFolder): Promise<CompiledScript> {
  const sha256 = sha256Of(source);
  const place = folder ? await placeOf(file, folder) : undefined;
  const folderKey = place ? `${sha256} ${place.scriptDir}` : undefined;
  for (const key of folderKey ? [sha256, folderKey] : [sha256]) {
    const entry = cache.get(key);
    // A failed compile is not kept: it is tried again below, here or in its own folder.
    const compiled = entry && await entry.catch(() => undefined);
    if (compiled && await stillFits(compiled, place?.scriptDir)) return { file, code: compiled.code, sha256 };
  }
  const code = transpile(file, source, place);
  cache.set(sha256, code);
  code.then((compiled) => {
    if (compiled.read.links.size === 0 || !folderKey) return;
    if (cache.get(sha256) === code) cache.delete(sha256);
    cache.set(folderKey, code);
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  }, () => {
    if (cache.get(sha256) === code) cache.delete(sha256);
  });
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  return { file, code: (await code).code, sha256 };
}

/** How many distinct scripts are compiled and kept (for tests of the cache). */
export function compiledScriptCount(): number {
  return cache.size;
}

interface ScriptPlace {
  readonly root: string;
  readonly scriptDir: string;
  readonly name: string;
}

/** The real paths of the model's folder and the script's; the script must lie inside the folder. */
async function placeOf(file: string, folder: ScriptFolder): Promise<ScriptPlace> {
  const real = async (path: string): Promise<string> => realpath(path).catch((err: NodeJS.ErrnoException) => {
    throw new ScriptCompileError(`${file}: the folder of model '${folder.name}' cannot be read (${err.code ?? 'error'})`);
  });
  const [root, scriptDir] = await Promise.all([real(folder.modelDir), real(folder.scriptDir)]);
  if (!inside(root, scriptDir)) throw new ScriptCompileError(`${file}: the script is not inside the folder of model '${folder.name}'`);
  return { root, scriptDir, name: folder.name };
}

/** Whether a compiled script still is what compiling it here would give: same folder, and each model file it read unchanged. */
async function stillFits(compiled: Compiled, scriptDir: string | undefined): Promise<boolean> {
  const { links, hashes } = compiled.read;
  if (links.size === 0) return true;
  if (compiled.scriptDir !== scriptDir) return false;
  const checks = await Promise.all([
    ...[...links].map(async ([written, real]) => (await realpath(written).catch(() => undefined)) === real),
    ...[...hashes].map(async ([file, sha256]) => {
      const bytes = await readFile(file).catch(() => undefined);
      return bytes !== undefined && sha256Of(bytes) === sha256;
    }),
  ]);
  return checks.every(Boolean);
}

const sha256Of = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

async function transpile(file: string, source: string, place: ScriptPlace | undefined): Promise<Compiled> {
  const model: ModelFiles | undefined = place ? { root: place.root, name: place.name, links: new Map(), hashes: new Map() } : undefined;
  try {
    const result = await build({
      stdin: { contents: source, loader: 'ts', sourcefile: file, resolveDir: place?.scriptDir ?? PACKAGE_ROOT },
      // Where esbuild's messages name files from: the script's folder, so the script itself is named as given.
      absWorkingDir: place?.scriptDir ?? PACKAGE_ROOT,
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'neutral',
      // Packages' builds for browsers, then their module and main entries: never a build that needs Node.
      mainFields: ['browser', 'module', 'main'],
      conditions: ['browser', 'import', 'default'],
      target: 'es2022',
      // No tsconfig.json is looked up: a script compiles the same wherever its repository lies.
      tsconfigRaw: {},
      logLevel: 'silent',
      plugins: [sandboxImports(model)],
    });
    const code = result.outputFiles[0]!.text;
    if (code.length > MAX_COMPILED_BYTES) {
      throw new ScriptCompileError(`${file}: compiles to ${code.length} bytes with the packages it imports, over the ${MAX_COMPILED_BYTES} bytes a script may be`);
    }
    return { code, scriptDir: place?.scriptDir, read: model ?? { links: new Map(), hashes: new Map() } };
  } catch (err) {
    if (err instanceof ScriptCompileError) throw err;
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors || errors.length === 0) throw err;
    throw new ScriptCompileError(errors.map((e) => describe(file, e, place)).join('\n'));
  }
}

/** Where and what, never the line itself: a message must not carry a file's contents to whoever asked for the load. */
function describe(file: string, message: Message, place: ScriptPlace | undefined): string {
  const at = message.location;
  // A problem inside an imported package is the script's, at the package's line.
  if (at && at.file !== file && at.file.includes('node_modules')) {
    return `${file}: ${message.text} (at ${at.file.slice(at.file.lastIndexOf('node_modules'))}:${at.line}:${at.column + 1})`;
  }
  // One in a model file is at that file, named from the model's folder (never the server's paths).
  if (at && at.file !== file && place) {
    const path = resolve(place.scriptDir, at.file);
    if (inside(place.root, path)) return `${place.name}/${relative(place.root, path).split(sep).join('/')}:${at.line}:${at.column + 1}: ${message.text}`;
  }
  const where = at ? `${file}:${at.line}:${at.column + 1}` : file;
  return `${where}: ${message.text}`;
}
