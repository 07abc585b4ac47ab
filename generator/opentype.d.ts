/**
 * The few parts of opentype.js 2.0 that generator/text-image.ts uses; the
 * package ships no type declarations of its own.
 */
declare module 'opentype.js' {
  export type PathCommand =
    | { readonly type: 'M' | 'L'; readonly x: number; readonly y: number }
    | { readonly type: 'Q'; readonly x1: number; readonly y1: number; readonly x: number; readonly y: number }
    | { readonly type: 'C'; readonly x1: number; readonly y1: number; readonly x2: number; readonly y2: number; readonly x: number; readonly y: number }
    | { readonly type: 'Z' };

  export interface Path {
    readonly commands: readonly PathCommand[];
  }

  export interface Glyph {
    readonly index: number;
    readonly advanceWidth: number | undefined;
    /** The outline at (x, y) on the baseline, y growing downwards, scaled to fontSize pixels per em. */
    getPath(x: number, y: number, fontSize: number): Path;
  }

  export interface Font {
    readonly unitsPerEm: number;
    readonly ascender: number;
    readonly descender: number;
    charToGlyph(char: string): Glyph;
    getKerningValue(left: Glyph, right: Glyph): number;
  }

  export function parse(buffer: ArrayBuffer): Font;

  const opentype: { parse: typeof parse };
  export default opentype;
}
