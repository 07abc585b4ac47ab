/**
 * Writes a sample image for the `ocr` pipeline (the README's curl example):
 *   npm run ocr:sample -- [--out FILE] [--text "line one|line two"] [--font NAME] [--size PX] [--light-on-dark]
 * FILE ending in .png gives a PNG, .jpg or .jpeg a JPEG. Deterministic: the
 * same options always give the same bytes.
 */
import { writeFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { FontName, RenderTextOptions } from './text-image.ts';
import { encodeJpeg, encodePng, FONT_NAMES, MAX_FONT_SIZE, MIN_FONT_SIZE, renderText } from './text-image.ts';

export const DEFAULT_SAMPLE_TEXT = 'Switchyard reads this line|Receipt 2026-12-07 total 42.50|Shipping to 48 Maple Street';
const DEFAULT_OUT = 'ocr-sample.png';

const USAGE = `usage: npm run ocr:sample -- [--out FILE] [--text "line one|line two"] [--font NAME] [--size PX] [--light-on-dark]
  --out FILE        where to write; .png or .jpg/.jpeg (default ${DEFAULT_OUT})
  --text LINES      lines separated by | (default "${DEFAULT_SAMPLE_TEXT}")
  --font NAME       one of ${FONT_NAMES.join(', ')} (default DejaVuSans)
  --size PX         font size in pixels, ${MIN_FONT_SIZE} to ${MAX_FONT_SIZE} (default 32)
  --light-on-dark   light text on a dark background (default dark on white)`;

export interface SampleRequest {
  readonly out: string;
  readonly format: 'png' | 'jpeg';
  readonly options: RenderTextOptions;
}

/** The command line, checked; throws an Error naming the bad option. */
export function parseSampleArgs(argv: readonly string[]): SampleRequest | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      text: { type: 'string' },
      font: { type: 'string' },
      size: { type: 'string' },
      'light-on-dark': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const out = values.out ?? DEFAULT_OUT;
  const extension = extname(out).toLowerCase();
  const format = extension === '.png' ? 'png' : extension === '.jpg' || extension === '.jpeg' ? 'jpeg' : undefined;
  if (out === '' || !format) throw new Error(`--out must name a .png, .jpg or .jpeg file, got ${JSON.stringify(out.slice(0, 100))}`);
  const font = values.font ?? 'DejaVuSans';
  if (!(FONT_NAMES as readonly string[]).includes(font)) throw new Error(`--font must be one of ${FONT_NAMES.join(', ')}, got ${JSON.stringify(font.slice(0, 100))}`);
  const sizeText = values.size ?? '32';
  const size = /^\d{1,3}$/.test(sizeText) ? Number(sizeText) : NaN;
  if (!(size >= MIN_FONT_SIZE && size <= MAX_FONT_SIZE)) throw new Error(`--size must be a whole number of pixels from ${MIN_FONT_SIZE} to ${MAX_FONT_SIZE}, got ${JSON.stringify(sizeText.slice(0, 100))}`);
  const texts = (values.text ?? DEFAULT_SAMPLE_TEXT).split('|');
  const blank = texts.findIndex((text) => text.trim() === '');
  if (blank >= 0) throw new Error(`--text line ${blank + 1} is empty; separate non-empty lines with |`);
  const dark = values['light-on-dark'] === true;
  return {
    out,
    format,
    options: {
      lines: texts.map((text) => ({ text, font: font as FontName, size })),
      background: dark ? [24, 26, 32] : [255, 255, 255],
      foreground: dark ? [240, 240, 236] : [20, 20, 20],
    },
  };
}

function main(argv: readonly string[]): number {
  let request: SampleRequest | 'help';
  try {
    request = parseSampleArgs(argv);
    if (request === 'help') {
      console.log(USAGE);
      return 0;
    }
    const image = renderText(request.options);
    writeFileSync(request.out, request.format === 'png' ? encodePng(image) : encodeJpeg(image));
    console.log(`wrote ${request.out} (${image.width}×${image.height}, ${image.lines.length} lines)`);
    return 0;
  } catch (error) {
    console.error(`ocr-sample: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
