/**
 * JSON parsing that keeps integers past Number.MAX_SAFE_INTEGER exact, for
 * INT64 / UINT64 data the server writes as plain digits. Integer literals of
 * 16 or more digits become bigints; everything else parses as JSON.parse
 * would. Slower than JSON.parse, so callers use it only when a plain parse
 * shows a 64-bit value that lost precision.
 */

const MARK = '\u0000';
const BIG_INTEGER = /^-?\d{16,}$/;

const isNumberChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 69 || c === 101;

/** Rewrites long integer literals as marked strings, leaving string contents alone. */
function markBigIntegers(text: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      i++;
      while (i < text.length) {
        const d = text.charCodeAt(i);
        i += d === 92 ? 2 : 1;
        if (d === 34) break;
      }
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      while (i < text.length && isNumberChar(text.charCodeAt(i))) i++;
      const token = text.slice(start, i);
      if (BIG_INTEGER.test(token)) {
        out += `${text.slice(copied, start)}"\\u0000${token}"`;
        copied = i;
      }
    } else {
      i++;
    }
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** JSON.parse, with integer literals of 16+ digits returned as bigint. */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(markBigIntegers(text), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(MARK) && BIG_INTEGER.test(value.slice(1)) ? BigInt(value.slice(1)) : value);
}
