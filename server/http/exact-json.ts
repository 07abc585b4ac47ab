/**
 * JSON.parse that keeps integers beyond 2^53 exact, as bigints. INT64 and
 * UINT64 tensor data in the v2 JSON form can hold any 64-bit value, and
 * JSON.parse alone would round 9007199254740993 to ...992 without a word.
 *
 * The fast path is plain JSON.parse: only when the text holds a run of 16 or
 * more digits is it scanned, and integer literals that a double cannot hold
 * are swapped for marked strings that the reviver turns into bigints.
 *
 * A client cannot forge the mark: it starts with one NUL, and in the scanned
 * text every client string value that starts with a NUL (which JSON can only
 * spell `\u0000`) gets a second NUL in front, which the reviver takes off
 * again. So a string starting with exactly one NUL then the tag is always
 * ours, whatever the client sent.
 */
import { quoted } from '../../engine/errors.ts';

const NUL = '\u0000';
const MARK = `${NUL}switchyard-bigint:`;
const MARK_JSON = '\\u0000switchyard-bigint:';
const NUL_JSON = '\\u0000';
const LONG_DIGITS = /\d{16}/;

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Whether the string literal that ends before `end` is an object key: the next token is ':'. */
function isKey(text: string, end: number): boolean {
  let i = end;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  return text[i] === ':';
}

/**
 * The text with every unsafe integer literal outside strings replaced by a
 * marked string, and every string value that starts with a NUL escaped with
 * a second one; `marked` counts the integers replaced.
 */
function markBigIntegers(text: string): { text: string; marked: number } {
  let out = '';
  let copied = 0;
  let marked = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === 34) { // a string: skip it, escapes included
      const start = i;
      i++;
      while (i < text.length) {
        const c = text.charCodeAt(i);
        if (c === 92) i += 2;
        else if (c === 34) { i++; break; } else i++;
      }
      if (text.startsWith(NUL_JSON, start + 1) && !isKey(text, i)) {
        out += `${text.slice(copied, start + 1)}${NUL_JSON}`;
        copied = start + 1;
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
          marked++;
        }
      }
      i = end;
      while (i < text.length && /[0-9.eE+-]/.test(text[i]!)) i++;
      continue;
    }
    i++;
  }
  return { text: out + text.slice(copied), marked };
}

function revive(_key: string, value: unknown): unknown {
  if (typeof value !== 'string' || !value.startsWith(NUL)) return value;
  if (value.startsWith(MARK)) return BigInt(value.slice(MARK.length));
  return value.slice(1); // a client string that started with NUL, escaped by markBigIntegers
}

/** Parses JSON; integers a double cannot hold exactly come back as bigints. Syntax errors are JSON.parse's own. */
export function parseJsonExact(text: string): unknown {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  const scanned = markBigIntegers(text);
  if (scanned.marked === 0) return JSON.parse(text);
  try {
    return JSON.parse(scanned.text, revive);
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

/** showJson cut to the length an error message may quote. */
export function quotedJson(value: unknown): string {
  return quoted(showJson(value));
}
