/**
 * The fixed set of rendered images the OCR accuracy test reads (issue 22
 * item 4): 11 images, 37 lines, in DejaVu Sans, Serif, Mono, Bold, Oblique and
 * Condensed at 18 to 40 px; dark on light, light on dark and coloured; one
 * image turned 180°; most with several lines.
 *
 * The lines are English words, digits and ASCII punctuation. They avoid
 * characters that only context tells apart in these fonts (a lone `l`, `I` or
 * `1`; `O` next to `0`), so a misread counts against the pipeline, not the set.
 * Every image stays within 960 px a side, the detector's default size limit,
 * so detection sees it unscaled.
 */
import type { FontName, Rgb, RenderTextOptions, TextLineOptions } from '../../generator/text-image.ts';

export interface OcrTestImage {
  readonly name: string;
  readonly options: RenderTextOptions;
  /** The lines in reading order (top to bottom before any rotation). */
  readonly expected: readonly string[];
}

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];

type Look = Partial<Pick<RenderTextOptions, 'background' | 'foreground' | 'rotate180'>>;

/** An image of lines in their own fonts and sizes, dark on white unless told. */
function mixedImage(name: string, lines: readonly TextLineOptions[], look: Look = {}): OcrTestImage {
  return { name, options: { lines, background: WHITE, foreground: INK, ...look }, expected: lines.map((line) => line.text) };
}

/** An image of lines in one font and size. */
function image(name: string, font: FontName, size: number, texts: readonly string[], look: Look = {}): OcrTestImage {
  return mixedImage(name, texts.map((text) => ({ text, font, size })), look);
}

export const OCR_TEST_SET: readonly OcrTestImage[] = [
  image('sans-28-dark-on-light', 'DejaVuSans', 28, [
    'Switchyard reads this line',
    'Invoice 2026-12-07 total 42.50',
    'Shipping address: 48 Maple Street',
  ]),
  image('serif-24-paragraph', 'DejaVuSerif', 24, [
    'The quick brown fox jumps over',
    'the lazy dog near the river bank.',
    'Meeting moved to Thursday at 3:45 pm',
    'Please bring your notes and a pen.',
  ]),
  image('mono-22-codes', 'DejaVuSansMono', 22, [
    'ORDER #A7X-5528 (priority)',
    'qty: 36 units @ $8.95 each',
    'ref=QZ-4473; batch=B-2269',
    'path /var/spool/print/job',
  ]),
  image('bold-36-light-on-dark', 'DejaVuSans-Bold', 36, [
    'GRAND OPENING SALE',
    'Everything must go!',
    'Doors open at 9 am',
  ], { background: [28, 28, 36], foreground: [245, 245, 240] }),
  mixedImage('sans-mixed-sizes-18-to-40', [
    { text: 'Weather Report', font: 'DejaVuSans', size: 40 },
    { text: 'Sunny with clouds, 24 C', font: 'DejaVuSans', size: 32 },
    { text: 'Wind from the west at 15 km/h', font: 'DejaVuSans', size: 24 },
    { text: 'Humidity 62%, pressure 1013 hPa', font: 'DejaVuSans', size: 18 },
  ]),
  image('serif-bold-30-blue-on-cream', 'DejaVuSerif-Bold', 30, [
    'Chapter Seven',
    'A Journey Across the Desert',
    'Page 87 of 254',
  ], { background: [250, 244, 225], foreground: [25, 40, 110] }),
  image('sans-30-rotated-180', 'DejaVuSans', 30, [
    'Upside down receipt',
    'Change due: 3.75',
  ], { rotate180: true }),
  image('mono-bold-20-terminal', 'DejaVuSansMono-Bold', 20, [
    '$ npm start --port 8042',
    'server ready on port 8042',
    'GET /v2/health/ready 200',
    'POST /v2/models/ocr/infer',
  ], { background: [30, 34, 42], foreground: [230, 230, 230] }),
  mixedImage('oblique-and-condensed-26', [
    { text: 'Handwritten notes are hard', font: 'DejaVuSans-Oblique', size: 26 },
    { text: 'Keep receipts for six months', font: 'DejaVuSansCondensed', size: 26 },
    { text: 'Call Maria before Friday!', font: 'DejaVuSans-Oblique', size: 26 },
    { text: 'Total due: $129.99 (tax incl.)', font: 'DejaVuSansCondensed', size: 26 },
  ]),
  image('serif-40-white-on-blue', 'DejaVuSerif', 40, [
    'Welcome to Switchyard',
  ], { background: [20, 60, 140], foreground: [250, 250, 250] }),
  image('sans-18-price-list', 'DejaVuSans', 18, [
    'Apples 3 kg, $7.20',
    'Bread, whole wheat: $2.85',
    'Coffee beans 500 g: $9.40',
    'Eggs (dozen): $3.65',
    'Subtotal: $23.10',
  ]),
];
