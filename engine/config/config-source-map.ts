/**
 * Where each field of a config file sits. protobufjs parses the text format
 * but keeps no positions, so this light scanner walks the same text and
 * records the line of every field path (`input[1].dims`,
 * `dynamic_batching.preferred_batch_size`). YAML and JSON files get the same
 * map from the yaml parser's node ranges. Lookups fall back to the nearest
 * recorded parent, so a problem always gets the most precise line known.
 */
import { isMap, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';

export interface SourceEntry {
  readonly line: number;
  /** The scalar written for the field, when it is a single scalar. */
  readonly value?: string;
}

export class ConfigSourceMap {
  private readonly entries = new Map<string, SourceEntry>();

  set(path: string, entry: SourceEntry): void {
    if (!this.entries.has(path)) this.entries.set(path, entry);
  }

  /**
   * Line of the path, or of its nearest recorded parent. Text format records
   * a nested message as its first occurrence ('dynamic_batching[0].x'), so a
   * path naming it without an index ('dynamic_batching.x') is looked up that
   * way too.
   */
  lineOf(path: string): number | undefined {
    const indexed = path.replace(/([A-Za-z0-9_]+)\./g, '$1[0].');
    const direct = this.nearest(path);
    const viaIndex = indexed !== path ? this.nearest(indexed) : undefined;
    // The deeper match wins: a YAML path is recorded as written, a text-format one with indexes.
    if (!viaIndex) return direct?.line;
    if (!direct) return viaIndex.line;
    return viaIndex.depth > direct.depth ? viaIndex.line : direct.line;
  }

  /** The entry of the path or of its nearest recorded parent, with how many path segments matched. */
  private nearest(path: string): { line: number; depth: number } | undefined {
    let current = path;
    for (;;) {
      const found = this.entries.get(current);
      if (found) return { line: found.line, depth: current.split(/[.[]/).length };
      const cut = Math.max(current.lastIndexOf('.'), current.lastIndexOf('['));
      if (cut <= 0) return undefined;
      current = current.slice(0, cut);
    }
  }

  /** Every recorded path with the scalar written for it. */
  scalars(): Array<[string, string, number]> {
    return [...this.entries].flatMap(([path, e]) => (e.value === undefined ? [] : [[path, e.value, e.line] as [string, string, number]]));
  }

  /** Every recorded path whose last field name is `field`. */
  occurrencesOf(field: string): Array<[string, SourceEntry]> {
    const out: Array<[string, SourceEntry]> = [];
    for (const [path, entry] of this.entries) {
      const last = path.replace(/\[\d+\]$/, '').split('.').pop();
      if (last === field) out.push([path, entry]);
    }
    return out;
  }

  static empty(): ConfigSourceMap {
    return new ConfigSourceMap();
  }
}

interface Token {
  readonly text: string;
  readonly line: number;
  readonly string: boolean;
}

const PUNCTUATION = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';']);

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\n') { line++; i++; continue; }
    if (/\s/.test(ch)) { i++; continue; }
    if (ch === '#') {
      while (i < source.length && source[i] !== '\n') i++;
      continue;
    }
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== ch && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
      tokens.push({ text: source.slice(i + 1, j), line, string: true });
      i = j + 1;
      continue;
    }
    if (PUNCTUATION.has(ch)) {
      tokens.push({ text: ch, line, string: false });
      i++;
      continue;
    }
    let j = i;
    while (j < source.length && !/[\s{}<>[\]:,;#"']/.test(source[j]!)) j++;
    tokens.push({ text: source.slice(i, j), line, string: false });
    i = j;
  }
  return tokens;
}

/** Scans protobuf text format. Tolerant: on malformed input it returns what it mapped so far. */
export function scanTextFormat(source: string): ConfigSourceMap {
  const map = new ConfigSourceMap();
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const next = (): Token | undefined => tokens[pos++];
  const skipSeparator = (): void => {
    const t = peek();
    if (t && !t.string && (t.text === ',' || t.text === ';')) pos++;
  };

  const readScalar = (): string | undefined => {
    const first = next();
    if (!first) return undefined;
    let text = first.text;
    if (!first.string && text === '-' && peek()) text += next()!.text;
    while (first.string && peek()?.string) text += next()!.text;
    return text;
  };

  const parseMessage = (prefix: string, close: string | undefined): void => {
    const counts = new Map<string, number>();
    const indexedPath = (name: string): string => {
      const n = counts.get(name) ?? 0;
      counts.set(name, n + 1);
      return `${prefix}${name}[${n}]`;
    };
    while (pos < tokens.length) {
      const nameToken = next()!;
      if (!nameToken.string && nameToken.text === close) return;
      if (nameToken.string || PUNCTUATION.has(nameToken.text)) continue;
      const name = nameToken.text;
      const path = `${prefix}${name}`;
      let valueToken = peek();
      if (valueToken && !valueToken.string && valueToken.text === ':') {
        pos++;
        valueToken = peek();
      }
      if (!valueToken) return;
      if (!valueToken.string && (valueToken.text === '{' || valueToken.text === '<')) {
        pos++;
        const element = indexedPath(name);
        map.set(path, { line: nameToken.line });
        map.set(element, { line: nameToken.line });
        parseMessage(`${element}.`, valueToken.text === '{' ? '}' : '>');
      } else if (!valueToken.string && valueToken.text === '[') {
        pos++;
        map.set(path, { line: nameToken.line });
        while (pos < tokens.length) {
          const t = peek()!;
          if (!t.string && t.text === ']') { pos++; break; }
          if (!t.string && t.text === ',') { pos++; continue; }
          if (!t.string && (t.text === '{' || t.text === '<')) {
            pos++;
            const element = indexedPath(name);
            map.set(element, { line: t.line });
            parseMessage(`${element}.`, t.text === '{' ? '}' : '>');
          } else {
            readScalar();
          }
        }
      } else {
        const value = readScalar();
        map.set(path, value === undefined ? { line: nameToken.line } : { line: nameToken.line, value });
        indexedPath(name);
      }
      skipSeparator();
    }
  };

  parseMessage('', undefined);
  return map;
}

/** The same map for a YAML (or JSON, which YAML reads) document. */
export function mapYamlDocument(doc: Document, lines: LineCounter): ConfigSourceMap {
  const map = new ConfigSourceMap();
  const lineAt = (node: Node | null | undefined): number | undefined =>
    node?.range ? lines.linePos(node.range[0]).line : undefined;

  const visit = (node: unknown, path: string): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
        if (key === undefined) continue;
        const childPath = path ? `${path}.${key}` : key;
        const line = lineAt(pair.key as Node);
        const value = isScalar(pair.value) ? String(pair.value.value) : undefined;
        if (line !== undefined) map.set(childPath, value === undefined ? { line } : { line, value });
        visit(pair.value, childPath);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        const line = lineAt(item as Node);
        if (line !== undefined) map.set(`${path}[${index}]`, { line });
        visit(item, `${path}[${index}]`);
      });
    }
  };
  visit(doc.contents, '');
  return map;
}
