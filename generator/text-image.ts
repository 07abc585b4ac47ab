/**
 * Draws known text into RGB images, for the OCR pipeline's accuracy test, its
 * bench and the README's sample: DejaVu fonts from the `dejavu-fonts-ttf` npm
 * package (nothing downloaded, no system fonts), outlines read by opentype.js,
 * filled by our own anti-aliased rasteriser. The same options always give the
 * same bytes.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import jpeg from 'jpeg-js';
import opentype from 'opentype.js';
import type { Font, Glyph } from 'opentype.js';
import { encode as fastPngEncode } from 'fast-png';
import type { Point, Quad, RgbImage } from '../pipelines/ocr/lib/types.ts';
import type { Affine, PathCommand } from './path-coverage.ts';
import { pathCoverage } from './path-coverage.ts';

export const FONT_NAMES = [
  'DejaVuSans', 'DejaVuSans-Bold', 'DejaVuSans-Oblique',
  'DejaVuSerif', 'DejaVuSerif-Bold', 'DejaVuSerif-Italic',
  'DejaVuSansMono', 'DejaVuSansMono-Bold',
  'DejaVuSansCondensed',
] as const;
export type FontName = (typeof FONT_NAMES)[number];

export type Rgb = readonly [r: number, g: number, b: number];

export interface TextLineOptions {
  readonly text: string;
  /** Default 'DejaVuSans'. */
  readonly font?: FontName;
  /** Pixels per em, MIN_FONT_SIZE to MAX_FONT_SIZE. */
  readonly size: number;
}

export interface RenderTextOptions {
  /** Drawn top to bottom, left-aligned; 1 to MAX_LINES lines. */
  readonly lines: readonly TextLineOptions[];
  /** Default white [255, 255, 255]. */
  readonly background?: Rgb;
  /** Default near-black [20, 20, 20]. */
  readonly foreground?: Rgb;
  /** Empty border around the text block, in pixels. Default 24. */
  readonly margin?: number;
  /** Pixels between one line's descender and the next line's ascender. Default: half the larger of the two font sizes, rounded. */
  readonly lineGap?: number;
  /** Turns the text block counter-clockwise by this many degrees (-45 to 45) about its centre; the canvas grows to hold it. Default 0. */
  readonly angle?: number;
  /** Turns the whole image upside down (after `angle`). Default false. */
  readonly rotate180?: boolean;
}

export interface RenderedLine {
  readonly text: string;
  /**
   * The line's layout box (pen start to end, font ascender to descender) in
   * image pixels: corners top-left, top-right, bottom-right, bottom-left in
   * the text's reading order, so under rotate180 the first corner lies
   * bottom-right in the image.
   */
  readonly box: Quad;
}

export interface RenderedText extends RgbImage {
  readonly lines: readonly RenderedLine[];
}

export const MAX_LINES = 64;
export const MAX_LINE_CHARS = 256;
export const MIN_FONT_SIZE = 6;
export const MAX_FONT_SIZE = 200;
export const MAX_MARGIN = 512;
export const MAX_ANGLE = 45;
/** Largest width or height of a rendered image. */
export const MAX_SIDE = 4096;

const DEFAULT_BACKGROUND: Rgb = [255, 255, 255];
const DEFAULT_FOREGROUND: Rgb = [20, 20, 20];
const DEFAULT_MARGIN = 24;

const require = createRequire(import.meta.url);
const fonts = new Map<FontName, Font>();

/** Parses a DejaVu font once per process. */
export function loadFont(name: FontName): Font {
  let font = fonts.get(name);
  if (!font) {
    const bytes = readFileSync(require.resolve(`dejavu-fonts-ttf/ttf/${name}.ttf`));
    font = opentype.parse(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    fonts.set(name, font);
  }
  return font;
}

function checkNumber(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`renderText: ${field} must be a finite number, got ${describe(value)}`);
  if (value < min || value > max) throw new RangeError(`renderText: ${field} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function checkColour(value: unknown, field: string): Rgb {
  const ok = Array.isArray(value) && value.length === 3 && value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255);
  if (!ok) throw new TypeError(`renderText: ${field} must be [r, g, b] with integers 0 to 255, got ${describe(value)}`);
  return value as unknown as Rgb;
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : Array.isArray(value) ? JSON.stringify(value) ?? String(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

interface LaidOutLine {
  readonly text: string;
  readonly glyphs: readonly { readonly glyph: Glyph; readonly x: number }[];
  readonly size: number;
  readonly width: number;
  readonly ascent: number;
  /** Ascender to descender, rounded up to whole pixels so lines start on pixel rows. */
  readonly height: number;
}

function layOut(line: TextLineOptions, index: number): LaidOutLine {
  const field = `lines[${index}]`;
  if (typeof line !== 'object' || line === null) throw new TypeError(`renderText: ${field} must be an object { text, font?, size }`);
  const fontName = line.font ?? 'DejaVuSans';
  if (!(FONT_NAMES as readonly string[]).includes(fontName)) {
    throw new RangeError(`renderText: ${field}.font must be one of ${FONT_NAMES.join(', ')}, got ${describe(fontName)}`);
  }
  const size = checkNumber(line.size, `${field}.size`, MIN_FONT_SIZE, MAX_FONT_SIZE);
  if (typeof line.text !== 'string' || line.text.trim() === '') throw new TypeError(`renderText: ${field}.text must be a non-empty string, got ${describe(line.text)}`);
  const chars = Array.from(line.text);
  if (chars.length > MAX_LINE_CHARS) throw new RangeError(`renderText: ${field}.text has ${chars.length} characters, more than ${MAX_LINE_CHARS}`);

  const font = loadFont(fontName);
  const scale = size / font.unitsPerEm;
  const glyphs: { glyph: Glyph; x: number }[] = [];
  let pen = 0;
  let previous: Glyph | undefined;
  for (const char of chars) {
    const glyph = font.charToGlyph(char);
    const code = char.codePointAt(0)!;
    // Index 0 is .notdef, the box drawn for a character the font lacks; control characters have no place on a line.
    if (glyph.index === 0 || code < 0x20 || code === 0x7f) {
      throw new RangeError(`renderText: ${field}.text: U+${code.toString(16).toUpperCase().padStart(4, '0')} has no glyph in ${fontName}`);
    }
    if (previous) pen += font.getKerningValue(previous, glyph) * scale;
    glyphs.push({ glyph, x: pen });
    pen += (glyph.advanceWidth ?? 0) * scale;
    previous = glyph;
  }
  const ascent = font.ascender * scale;
  return { text: line.text, glyphs, size, width: pen, ascent, height: Math.ceil(ascent - font.descender * scale) };
}

/** Draws the lines, text colour composited over the background by the rasteriser's coverage. */
export function renderText(options: RenderTextOptions): RenderedText {
  if (typeof options !== 'object' || options === null) throw new TypeError('renderText: options must be an object');
  if (!Array.isArray(options.lines) || options.lines.length === 0) throw new TypeError('renderText: lines must be a non-empty array');
  if (options.lines.length > MAX_LINES) throw new RangeError(`renderText: lines has ${options.lines.length} entries, more than ${MAX_LINES}`);
  const background = checkColour(options.background ?? DEFAULT_BACKGROUND, 'background');
  const foreground = checkColour(options.foreground ?? DEFAULT_FOREGROUND, 'foreground');
  const margin = Math.round(checkNumber(options.margin ?? DEFAULT_MARGIN, 'margin', 0, MAX_MARGIN));
  if (options.lineGap !== undefined) checkNumber(options.lineGap, 'lineGap', 0, MAX_MARGIN);
  const angle = checkNumber(options.angle ?? 0, 'angle', -MAX_ANGLE, MAX_ANGLE);
  if (options.rotate180 !== undefined && typeof options.rotate180 !== 'boolean') throw new TypeError(`renderText: rotate180 must be a boolean, got ${describe(options.rotate180)}`);

  const lines = options.lines.map(layOut);
  const tops: number[] = [];
  let y = margin;
  lines.forEach((line, i) => {
    if (i > 0) y += Math.round(options.lineGap ?? Math.max(line.size, lines[i - 1]!.size) / 2);
    tops.push(y);
    y += line.height;
  });
  const blockWidth = 2 * margin + Math.ceil(Math.max(...lines.map((l) => l.width)));
  const blockHeight = y + margin;

  const radians = (angle * Math.PI) / 180;
  const cos = Math.cos(radians), sin = Math.sin(radians);
  const width = Math.ceil(blockWidth * Math.abs(cos) + blockHeight * Math.abs(sin) - 1e-9);
  const height = Math.ceil(blockWidth * Math.abs(sin) + blockHeight * Math.abs(cos) - 1e-9);
  if (width > MAX_SIDE || height > MAX_SIDE) throw new RangeError(`renderText: the image would be ${width}×${height} pixels, more than ${MAX_SIDE} on a side`);

  // Block centre to canvas centre, turned counter-clockwise as seen (y grows downwards), then upside down if asked.
  const flip = options.rotate180 === true ? -1 : 1;
  const a = flip * cos, b = -flip * sin, c = flip * sin, d = flip * cos;
  const cx = blockWidth / 2, cy = blockHeight / 2;
  const transform: Affine = [a, b, c, d, width / 2 - (a * cx + c * cy), height / 2 - (b * cx + d * cy)];
  const place = ([px, py]: Point): Point => [transform[0] * px + transform[2] * py + transform[4], transform[1] * px + transform[3] * py + transform[5]];

  const outlines: (readonly PathCommand[])[] = [];
  const rendered: RenderedLine[] = lines.map((line, i) => {
    const top = tops[i]!;
    const baseline = top + line.ascent;
    for (const { glyph, x } of line.glyphs) outlines.push(glyph.getPath(margin + x, baseline, line.size).commands);
    const left = margin, right = margin + line.width, bottom = top + line.height;
    return { text: line.text, box: [place([left, top]), place([right, top]), place([right, bottom]), place([left, bottom])] };
  });

  const coverage = pathCoverage(outlines, width, height, transform);
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < coverage.length; p++) {
    const k = coverage[p]!;
    for (let ch = 0; ch < 3; ch++) data[p * 3 + ch] = Math.round(background[ch]! + (foreground[ch]! - background[ch]!) * k);
  }
  return { width, height, data, lines: rendered };
}

/** An 8-bit RGB PNG of the image. */
export function encodePng(image: RgbImage): Uint8Array {
  return fastPngEncode({ width: image.width, height: image.height, data: image.data, channels: 3, depth: 8 });
}

/** A baseline JPEG of the image; quality 1 to 100, default 92. */
export function encodeJpeg(image: RgbImage, quality = 92): Uint8Array {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new RangeError(`encodeJpeg: quality must be an integer 1 to 100, got ${quality}`);
  const rgba = new Uint8Array(image.width * image.height * 4);
  for (let p = 0, q = 0; p < image.data.length; p += 3, q += 4) {
    rgba[q] = image.data[p]!;
    rgba[q + 1] = image.data[p + 1]!;
    rgba[q + 2] = image.data[p + 2]!;
    rgba[q + 3] = 255;
  }
  const { data } = jpeg.encode({ width: image.width, height: image.height, data: rgba }, quality);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
