/**
 * JSON.parse that keeps integers beyond 2^53 exact, as bigints. INT64 and
 * UINT64 tensor data in the v2 JSON form can hold any 64-bit value, and
 * JSON.parse alone would round 9007199254740993 to ...992 without a word.
 *
 * The fast path is plain JSON.parse: only when the text holds a run of 16 or
 * more digits is it scanned, and integer literals that a double cannot hold
 * are swapped for marked strings that the reviver turns into bigints.
 */

/** A prefix no real JSON input starts a string with: NUL then a tag. */
const MARK = '\u0000switchyard-bigint:';
const MARK_JSON = '\\u0000switchyard-bigint:';
const LONG_DIGITS = /\d{16}/;

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The text with every unsafe integer literal outside strings replaced by a marked string. */
function markBigIntegers(text: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === 34) { // a string: skip it, escapes included
      i++;
      while (i < text.length) {
        const c = text.charCodeAt(i);
        if (c === 92) i += 2;
        else if (c === 34) { i++; break; } else i++;
      }
      continue;
    }
    if (code === 45 || isDigit(code)) {
      const start = i;
      let end = code === 45 ? i + 1 : i;
      while (end < text.length && isDigit(text.charCodeAt(end))) end++;
      const next = text[end];
      const integer = next !== '.' && next !== 'e' && next !== 'E';
      if (integer && end - start >= 16) {
        const literal = text.slice(start, end);
        if (!Number.isSafeInteger(Number(literal))) {
          out += `${text.slice(copied, start)}"${MARK_JSON}${literal}"`;
          copied = end;
        }
      }
      i = end;
      while (i < text.length && /[0-9.eE+-]/.test(text[i]!)) i++;
      continue;
    }
    i++;
  }
  return out + text.slice(copied);
}

function revive(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.startsWith(MARK) ? BigInt(value.slice(MARK.length)) : value;
}

/** Parses JSON; integers a double cannot hold exactly come back as bigints. Syntax errors are JSON.parse's own. */
export function parseJsonExact(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  const marked = markBigIntegers(text);
  if (marked.length === text.length) return JSON.parse(text);
  try {
    return JSON.parse(marked, revive);
  } catch {
    return JSON.parse(text); // throws the error, with positions in the text the client sent
  }
}

/** JSON.stringify for error messages, bigints included. */
export function showJson(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}
