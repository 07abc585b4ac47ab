/**
 * Unknown-field check for manifests, read from the TypeScript declarations
 * of kubernetes-models. Their JSON-schema validators check types and
 * required fields but, like the API server's lax mode, let unknown fields
 * through; `kubectl apply` (strict field validation) rejects them, and a
 * misspelt field (`readinesProbe`) silently does nothing otherwise. The
 * .d.ts files list every field of every type, so they give the same strict
 * check without a cluster.
 *
 * A small parser for the subset of TypeScript those generated files use:
 * interfaces, type aliases, imports and re-exports, inline object types,
 * index signatures, Array<T>, unions and literals.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

type TypeNode =
  | { readonly kind: 'any' }
  | { readonly kind: 'object'; readonly props: ReadonlyMap<string, TypeNode>; readonly index: TypeNode | undefined; readonly bases: readonly TypeNode[] }
  | { readonly kind: 'array'; readonly of: TypeNode }
  | { readonly kind: 'union'; readonly of: readonly TypeNode[] }
  | { readonly kind: 'ref'; readonly file: string; readonly name: string };

const ANY: TypeNode = { kind: 'any' };
const PRIMITIVES = new Set(['string', 'number', 'boolean', 'any', 'unknown', 'object', 'null', 'undefined', 'never', 'true', 'false', 'bigint']);

interface DeclFile {
  readonly decls: Map<string, TypeNode>;
  /** local name -> where it comes from */
  readonly imports: Map<string, { spec: string; name: string }>;
  /** exported name -> local name (`export type { IProbe as IIoK8sApiCoreV1Probe }`) */
  readonly aliases: Map<string, string>;
  /** `export * from` and `export { A } from` targets */
  readonly reexports: { spec: string; names: Map<string, string> | undefined }[];
}

type Token = { readonly t: 'str' | 'id' | 'num' | 'p'; readonly v: string };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '/' && text[i + 1] === '*') { const end = text.indexOf('*/', i + 2); i = end < 0 ? text.length : end + 2; continue; }
    if (c === '/' && text[i + 1] === '/') { const end = text.indexOf('\n', i); i = end < 0 ? text.length : end; continue; }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\') { value += text[j + 1] ?? ''; j += 2; } else { value += text[j]; j++; }
      }
      out.push({ t: 'str', v: value });
      i = j + 1;
      continue;
    }
    const id = /^[A-Za-z_$][\w$]*/.exec(text.slice(i, i + 200));
    if (id) { out.push({ t: 'id', v: id[0] }); i += id[0].length; continue; }
    const num = /^-?\d+(\.\d+)?/.exec(text.slice(i, i + 50));
    if (num) { out.push({ t: 'num', v: num[0] }); i += num[0].length; continue; }
    if (c === '=' && text[i + 1] === '>') { out.push({ t: 'p', v: '=>' }); i += 2; continue; }
    out.push({ t: 'p', v: c });
    i++;
  }
  return out;
}

class Parser {
  private pos = 0;
  constructor(private readonly toks: Token[], private readonly file: string) {}

  private peek(offset = 0): Token | undefined { return this.toks[this.pos + offset]; }
  private next(): Token {
    const tok = this.toks[this.pos++];
    if (!tok) throw new Error(`${this.file}: unexpected end of declarations`);
    return tok;
  }
  private is(v: string, offset = 0): boolean { const tok = this.peek(offset); return tok !== undefined && tok.v === v && tok.t !== 'str'; }
  private expect(v: string): void {
    const tok = this.next();
    if (tok.v !== v) throw new Error(`${this.file}: expected '${v}', found '${tok.v}' (token ${this.pos})`);
  }
  private skipBalanced(open: string, close: string): void {
    this.expect(open);
    let depth = 1;
    while (depth > 0) {
      const tok = this.next();
      if (tok.t === 'str') continue;
      if (tok.v === open) depth++;
      else if (tok.v === close) depth--;
    }
  }

  parseFile(): DeclFile {
    const file: DeclFile = { decls: new Map(), imports: new Map(), aliases: new Map(), reexports: [] };
    while (this.peek()) {
      if (this.is('import')) { this.parseImport(file); continue; }
      if (this.is('export')) { this.next(); }
      if (this.is('declare')) { this.next(); }
      if (this.is('interface')) {
        this.next();
        const name = this.next().v;
        if (this.is('<')) this.skipBalanced('<', '>');
        const bases: TypeNode[] = [];
        if (this.is('extends')) {
          this.next();
          do { bases.push(this.parsePrimary()); } while (this.is(',') && this.next());
        }
        const body = this.parseObject();
        file.decls.set(name, { ...body, bases } as TypeNode);
        continue;
      }
      // `export type { A as B }` is `export { A as B }` for types.
      if (this.is('type') && this.is('{', 1)) this.next();
      if (this.is('type')) {
        this.next();
        const name = this.next().v;
        if (this.is('<')) this.skipBalanced('<', '>');
        this.expect('=');
        file.decls.set(name, this.parseType());
        if (this.is(';')) this.next();
        continue;
      }
      if (this.is('*')) {
        this.next();
        this.expect('from');
        file.reexports.push({ spec: this.next().v, names: undefined });
        if (this.is(';')) this.next();
        continue;
      }
      if (this.is('{')) {
        const names = new Map<string, string>();
        this.parseNameList(names);
        if (this.is('from')) { this.next(); file.reexports.push({ spec: this.next().v, names }); }
        else for (const [exported, local] of names) file.aliases.set(exported, local);
        if (this.is(';')) this.next();
        continue;
      }
      if (this.is('class') || this.is('abstract') || this.is('function') || this.is('const') || this.is('let') || this.is('var') || this.is('namespace') || this.is('enum')) {
        while (this.peek() && !this.is('{') && !this.is(';')) this.next();
        if (this.is('{')) this.skipBalanced('{', '}'); else this.next();
        continue;
      }
      this.next();
    }
    return file;
  }

  /** `{ A, B as C }` into exported -> local */
  private parseNameList(into: Map<string, string>): void {
    this.expect('{');
    while (!this.is('}')) {
      if (this.is('type')) this.next();
      const local = this.next().v;
      let exported = local;
      if (this.is('as')) { this.next(); exported = this.next().v; }
      into.set(exported, local);
      if (this.is(',')) this.next();
    }
    this.expect('}');
  }

  private parseImport(file: DeclFile): void {
    this.expect('import');
    if (this.is('type')) this.next();
    if (!this.is('{')) { while (this.peek() && !this.is(';')) this.next(); this.next(); return; }
    const names = new Map<string, string>();
    this.parseNameList(names);
    this.expect('from');
    const spec = this.next().v;
    for (const [local, exported] of names) file.imports.set(local, { spec, name: exported });
    if (this.is(';')) this.next();
  }

  parseType(): TypeNode {
    if (this.is('|')) this.next();
    const members = [this.parsePostfix()];
    while (this.is('|') || this.is('&')) { this.next(); members.push(this.parsePostfix()); }
    return members.length === 1 ? members[0]! : { kind: 'union', of: members };
  }

  private parsePostfix(): TypeNode {
    let node = this.parsePrimary();
    while (this.is('[') && this.is(']', 1)) { this.next(); this.next(); node = { kind: 'array', of: node }; }
    return node;
  }

  private parsePrimary(): TypeNode {
    const tok = this.peek();
    if (!tok) throw new Error(`${this.file}: unexpected end in a type`);
    if (tok.t === 'str' || tok.t === 'num') { this.next(); return ANY; }
    if (this.is('{')) return this.parseObject();
    if (this.is('(')) {
      const start = this.pos;
      this.skipBalanced('(', ')');
      if (this.is('=>')) {
        // a function type; its return may be a predicate (`value is T`)
        this.next();
        if (this.is('is', 1)) { this.next(); this.next(); }
        this.parseType();
        return ANY;
      }
      this.pos = start;
      this.next();
      const inner = this.parseType();
      this.expect(')');
      return inner;
    }
    if (tok.t !== 'id') throw new Error(`${this.file}: unexpected '${tok.v}' in a type`);
    this.next();
    let name = tok.v;
    if (name === 'import' && this.is('(')) { this.skipBalanced('(', ')'); name = ''; }
    while (this.is('.')) { this.next(); name += `.${this.next().v}`; }
    let args: TypeNode[] = [];
    if (this.is('<')) {
      this.next();
      args = [this.parseType()];
      while (this.is(',')) { this.next(); args.push(this.parseType()); }
      this.expect('>');
    }
    while (this.is('[') && !this.is(']', 1)) this.skipBalanced('[', ']');
    if (name === 'Array' || name === 'ReadonlyArray') return { kind: 'array', of: args[0] ?? ANY };
    if (name === 'Record') return { kind: 'object', props: new Map(), index: args[1] ?? ANY, bases: [] };
    if (PRIMITIVES.has(name) || name === '' || name.includes('.')) return ANY;
    return { kind: 'ref', file: this.file, name };
  }

  private parseObject(): TypeNode & { kind: 'object' } {
    this.expect('{');
    const props = new Map<string, TypeNode>();
    let index: TypeNode | undefined;
    while (!this.is('}')) {
      if (this.is('readonly')) this.next();
      if (this.is('[')) {
        this.next();
        this.next();
        this.expect(':');
        this.parseType();
        this.expect(']');
        this.expect(':');
        index = this.parseType();
      } else {
        const key = this.next().v;
        if (this.is('?')) this.next();
        if (this.is('(')) { this.skipBalanced('(', ')'); if (this.is(':')) { this.next(); this.parseType(); } }
        else { this.expect(':'); props.set(key, this.parseType()); }
      }
      if (this.is(';') || this.is(',')) this.next();
    }
    this.expect('}');
    return { kind: 'object', props, index, bases: [] };
  }
}

const files = new Map<string, DeclFile>();

function declFile(path: string): DeclFile {
  let file = files.get(path);
  if (!file) {
    file = new Parser(tokenize(readFileSync(path, 'utf8')), path).parseFile();
    files.set(path, file);
  }
  return file;
}

function exportTarget(exports: unknown): string | undefined {
  if (typeof exports === 'string') return exports;
  if (exports && typeof exports === 'object') {
    const conditions = exports as Record<string, unknown>;
    return exportTarget(conditions['types'] ?? conditions['import'] ?? conditions['default']);
  }
  return undefined;
}

/** Where `spec`, imported from `fromFile`, has its declarations. */
function resolveSpec(spec: string, fromFile: string): string {
  if (spec.startsWith('.')) {
    const base = resolve(dirname(fromFile), spec);
    for (const candidate of [base.replace(/\.js$/, '.d.ts'), `${base}.d.ts`, join(base, 'index.d.ts')]) {
      if (existsSync(candidate)) return candidate;
    }
    throw new Error(`cannot resolve ${spec} from ${fromFile}`);
  }
  const parts = spec.split('/');
  const packageName = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  const subpath = `.${spec.slice(packageName.length)}`;
  const packageDir = join(ROOT, 'node_modules', packageName);
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { exports?: unknown; types?: string; typings?: string };
  let target: string | undefined;
  // `exports` is a subpath map, or the conditions (or target) of '.' alone.
  const given = manifest.exports ?? {};
  const exports: Record<string, unknown> = typeof given === 'object' && given !== null && Object.keys(given).every((k) => k.startsWith('.'))
    ? given as Record<string, unknown>
    : { '.': given };
  if (exports[subpath] !== undefined) target = exportTarget(exports[subpath]);
  else {
    for (const [pattern, value] of Object.entries(exports)) {
      const star = pattern.indexOf('*');
      if (star < 0) continue;
      const prefix = pattern.slice(0, star);
      const suffix = pattern.slice(star + 1);
      if (subpath.startsWith(prefix) && subpath.endsWith(suffix)) {
        target = exportTarget(value)?.replace('*', subpath.slice(prefix.length, subpath.length - suffix.length));
        break;
      }
    }
  }
  if (!target && subpath === '.') target = manifest.types ?? manifest.typings;
  if (!target) throw new Error(`cannot resolve ${spec}: no types export for ${subpath}`);
  const path = join(packageDir, target);
  return path.endsWith('.d.ts') ? path : path.replace(/\.js$/, '.d.ts');
}

const resolved = new Map<string, TypeNode>();

function lookup(file: string, name: string, seen = new Set<string>()): TypeNode {
  const key = `${file}#${name}`;
  const cached = resolved.get(key);
  if (cached) return cached;
  if (seen.has(key)) throw new Error(`circular type alias ${name} in ${file}`);
  seen.add(key);
  const decls = declFile(file);
  let node: TypeNode | undefined = decls.decls.get(name);
  if (!node) {
    const local = decls.aliases.get(name);
    if (local && local !== name) node = lookup(file, local, seen);
  }
  if (!node) {
    const imported = decls.imports.get(name);
    if (imported) node = lookup(resolveSpec(imported.spec, file), imported.name, seen);
  }
  if (!node) {
    for (const reexport of decls.reexports) {
      const inner = reexport.names ? reexport.names.get(name) : name;
      if (!inner) continue;
      const target = resolveSpec(reexport.spec, file);
      try { node = lookup(target, inner, seen); break; } catch (err) { if (reexport.names) throw err; }
    }
  }
  if (!node) throw new Error(`type ${name} is not declared in ${file}`);
  node = deref(node);
  resolved.set(key, node);
  return node;
}

function deref(node: TypeNode): TypeNode {
  return node.kind === 'ref' ? lookup(node.file, node.name) : node;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function allProps(node: TypeNode & { kind: 'object' }): { props: Map<string, TypeNode>; index: TypeNode | undefined } {
  const props = new Map(node.props);
  let index = node.index;
  for (const base of node.bases) {
    const b = deref(base);
    if (b.kind !== 'object') continue;
    const inherited = allProps(b);
    for (const [k, v] of inherited.props) if (!props.has(k)) props.set(k, v);
    index ??= inherited.index;
  }
  return { props, index };
}

function check(value: unknown, type: TypeNode, path: string, errors: string[]): void {
  const node = deref(type);
  switch (node.kind) {
    case 'any':
    case 'ref':
      return;
    case 'array':
      if (Array.isArray(value)) value.forEach((item, i) => check(item, node.of, `${path}[${i}]`, errors));
      return;
    case 'object': {
      if (!isPlainObject(value)) return;
      const { props, index } = allProps(node);
      for (const [key, item] of Object.entries(value)) {
        const field = props.get(key) ?? index;
        if (field) check(item, field, `${path}.${key}`, errors);
        else errors.push(`${path}.${key}`);
      }
      return;
    }
    case 'union': {
      const members = node.of.map(deref);
      const candidates = members.filter((m) => (Array.isArray(value) ? m.kind === 'array' : isPlainObject(value) ? m.kind === 'object' : false));
      if (candidates.length === 0) return;
      let best: string[] | undefined;
      for (const candidate of candidates) {
        const found: string[] = [];
        check(value, candidate, path, found);
        if (!best || found.length < best.length) best = found;
      }
      errors.push(...(best ?? []));
    }
  }
}

/** A type declared in a package's .d.ts, named by module specifier and exported name. */
export interface DeclaredType {
  /** e.g. 'kubernetes-models/apps/v1/Deployment' */
  readonly module: string;
  /** e.g. 'IDeployment' */
  readonly name: string;
}

/**
 * The fields of `value` that `type` does not declare, as paths from
 * `root` (e.g. `spec.template.spec.containers[0].readinesProbe`).
 */
export function unknownFields(value: unknown, type: DeclaredType, root = ''): string[] {
  const file = resolveSpec(type.module, join(ROOT, 'package.json'));
  const errors: string[] = [];
  check(value, lookup(file, type.name), root, errors);
  return errors.map((p) => p.replace(/^\./, ''));
}
