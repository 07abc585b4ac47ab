import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import type { RenderedText, Rgb } from '../../generator/text-image.ts';
import { encodeJpeg, encodePng, MAX_FONT_SIZE, MAX_LINE_CHARS, MAX_LINES, MAX_SIDE, MIN_FONT_SIZE, renderText } from '../../generator/text-image.ts';

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];

/** The smallest rectangle holding every pixel that differs from the background: [left, top, right, bottom), or undefined for none. */
function inkBounds(image: RenderedText, background: Rgb): [number, number, number, number] | undefined {
  let left = Infinity, top = Infinity, right = -Infinity, bottom = -Infinity;
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const p = (y * image.width + x) * 3;
      if (image.data[p] === background[0] && image.data[p + 1] === background[1] && image.data[p + 2] === background[2]) continue;
      left = Math.min(left, x);
      right = Math.max(right, x + 1);
      top = Math.min(top, y);
      bottom = Math.max(bottom, y + 1);
    }
  }
  return left === Infinity ? undefined : [left, top, right, bottom];
}

describe('renderText', () => {
  const oneLine = { lines: [{ text: 'Switchyard reads this line', size: 32 }], background: WHITE, foreground: INK, margin: 24 } as const;

  it('gives the same bytes for the same options', () => {
    const options = { lines: [{ text: 'Same bytes, twice: 42.50', font: 'DejaVuSerif', size: 26 }, { text: 'second line', font: 'DejaVuSansMono', size: 19 }] } as const;
    const first = renderText(options), second = renderText(options);
    assert.equal(first.width, second.width);
    assert.equal(first.height, second.height);
    assert.deepEqual(first.data, second.data);
    assert.deepEqual(encodePng(first), encodePng(second));
  });

  it('puts the ink of a line inside its margins and its layout box, anti-aliased', () => {
    const image = renderText(oneLine);
    assert.equal(image.data.length, image.width * image.height * 3);
    const [left, top, right, bottom] = inkBounds(image, WHITE)!;
    assert.ok(left >= 24 && left <= 28, `ink starts at x=${left}`);
    assert.ok(top >= 24 && top <= 24 + 32 * 0.3, `ink starts at y=${top}`);
    assert.ok(image.width - right >= 24 && image.width - right <= 28, `ink ends ${image.width - right} px from the right edge`);
    assert.ok(image.height - bottom >= 24, `ink ends ${image.height - bottom} px from the bottom edge`);
    const [[bx0, by0], , [bx2, by2]] = image.lines[0]!.box;
    assert.deepEqual([bx0, by0], [24, 24]);
    assert.ok(right <= Math.ceil(bx2) && bottom <= Math.ceil(by2), `ink ${right},${bottom} outside the box corner ${bx2},${by2}`);
    const levels = new Set<number>();
    for (let p = 0; p < image.data.length; p += 3) levels.add(image.data[p]!);
    assert.ok(levels.has(255) && levels.has(20), 'both the background and full ink appear');
    assert.ok(levels.size > 50, `edges are anti-aliased: ${levels.size} grey levels`);
  });

  it('stacks lines top to bottom with the gap between them', () => {
    const image = renderText({ lines: [{ text: 'first line', size: 30 }, { text: 'second line', size: 20 }, { text: 'third', size: 24 }], lineGap: 10 });
    const tops = image.lines.map((line) => line.box[0][1]);
    const bottoms = image.lines.map((line) => line.box[3][1]);
    assert.equal(tops[0], 24);
    assert.equal(tops[1], bottoms[0]! + 10);
    assert.equal(tops[2], bottoms[1]! + 10);
    assert.equal(image.height, bottoms[2]! + 24);
    // Every row between two lines' boxes is background.
    for (let y = bottoms[0]!; y < tops[1]!; y++) {
      for (let x = 0; x < image.width; x++) assert.equal(image.data[(y * image.width + x) * 3], 255, `ink at ${x},${y} in the gap`);
    }
  });

  it('rotate180 turns the whole image upside down, boxes in reading order', () => {
    const upright = renderText(oneLine);
    const turned = renderText({ ...oneLine, rotate180: true });
    assert.equal(turned.width, upright.width);
    assert.equal(turned.height, upright.height);
    // The same picture read backwards, but for one sub-scanline where a horizontal edge lies exactly on a sample line:
    // the half-open fill rule puts that line inside on one side of the edge, and turning swaps the sides.
    const pixels = upright.width * upright.height;
    let worst = 0, total = 0;
    for (let p = 0; p < pixels; p++) {
      const difference = Math.abs(turned.data[p * 3]! - upright.data[(pixels - 1 - p) * 3]!);
      worst = Math.max(worst, difference);
      total += difference;
    }
    assert.ok(worst <= Math.ceil(235 / 8), `pixels differ by up to ${worst} from the upright image read backwards`);
    assert.ok(total / pixels < 0.5, `pixels differ by ${total / pixels} on average from the upright image read backwards`);
    const [left, top, right, bottom] = inkBounds(turned, WHITE)!;
    const [uLeft, uTop, uRight, uBottom] = inkBounds(upright, WHITE)!;
    assert.deepEqual([left, top, right, bottom], [upright.width - uRight, upright.height - uBottom, upright.width - uLeft, upright.height - uTop]);
    const [first, second, third, fourth] = turned.lines[0]!.box;
    assert.deepEqual(first, [upright.width - 24, upright.height - 24], 'the text starts bottom right');
    assert.ok(second[0] < first[0] && third[1] < second[1] && fourth[0] > third[0], `box ${JSON.stringify(turned.lines[0]!.box)}`);
  });

  it('light on dark is the dark-on-light image inverted', () => {
    const dark = renderText(oneLine);
    const light = renderText({ ...oneLine, background: INK, foreground: WHITE });
    for (let i = 0; i < dark.data.length; i++) {
      const sum = dark.data[i]! + light.data[i]!;
      assert.ok(Math.abs(sum - 275) <= 1, `byte ${i}: ${dark.data[i]} + ${light.data[i]}`);
    }
    assert.deepEqual(inkBounds(light, INK), inkBounds(dark, WHITE));
  });

  it('turns the text block by a small angle, growing the canvas', () => {
    const flat = renderText(oneLine);
    const tilted = renderText({ ...oneLine, angle: 10 });
    const radians = (10 * Math.PI) / 180;
    assert.equal(tilted.width, Math.ceil(flat.width * Math.cos(radians) + flat.height * Math.sin(radians)));
    assert.equal(tilted.height, Math.ceil(flat.width * Math.sin(radians) + flat.height * Math.cos(radians)));
    const [start, end] = tilted.lines[0]!.box;
    assert.ok(Math.abs(Math.atan2(start[1] - end[1], end[0] - start[0]) * 180 / Math.PI - 10) < 1e-9, 'the baseline rises to the right by 10°');
    const [left, top, right, bottom] = inkBounds(tilted, WHITE)!;
    assert.ok(left > 0 && top > 0 && right < tilted.width && bottom < tilted.height, `ink ${left},${top} to ${right},${bottom} touches the edge`);
  });

  it('round-trips through PNG and JPEG decoders', () => {
    const image = renderText({ ...oneLine, background: [250, 244, 225], foreground: [25, 40, 110] });
    const png = decodePng(encodePng(image));
    assert.equal(png.width, image.width);
    assert.equal(png.height, image.height);
    assert.equal(png.channels, 3);
    assert.equal(png.depth, 8);
    assert.deepEqual(new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength), image.data);

    const decoded = jpeg.decode(encodeJpeg(image), { useTArray: true, formatAsRGBA: false });
    assert.equal(decoded.width, image.width);
    assert.equal(decoded.height, image.height);
    let total = 0;
    for (let i = 0; i < image.data.length; i++) total += Math.abs(decoded.data[i]! - image.data[i]!);
    assert.ok(total / image.data.length < 6, `mean JPEG error ${total / image.data.length}`);
    assert.throws(() => encodeJpeg(image, 0), /quality must be an integer 1 to 100, got 0/);
  });

  it('refuses bad options naming the field, and takes the bounds', () => {
    const line = { text: 'abc', size: 20 };
    const bad: [unknown, RegExp][] = [
      [{ lines: [] }, /lines must be a non-empty array/],
      [{ lines: Array.from({ length: MAX_LINES + 1 }, () => line) }, new RegExp(`lines has ${MAX_LINES + 1} entries, more than ${MAX_LINES}`)],
      [{ lines: [{ text: 'abc', size: MIN_FONT_SIZE - 1 }] }, /lines\[0\]\.size must be between 6 and 200, got 5/],
      [{ lines: [line, { text: 'abc', size: MAX_FONT_SIZE + 1 }] }, /lines\[1\]\.size must be between 6 and 200, got 201/],
      [{ lines: [{ text: 'abc', size: Number.NaN }] }, /lines\[0\]\.size must be a finite number, got NaN/],
      [{ lines: [{ text: 'abc', size: 20, font: 'Arial' }] }, /lines\[0\]\.font must be one of DejaVuSans, .*got "Arial"/],
      [{ lines: [{ text: '  ', size: 20 }] }, /lines\[0\]\.text must be a non-empty string/],
      [{ lines: [{ text: 'x'.repeat(MAX_LINE_CHARS + 1), size: 6 }] }, new RegExp(`lines\\[0\\]\\.text has ${MAX_LINE_CHARS + 1} characters, more than ${MAX_LINE_CHARS}`)],
      [{ lines: [{ text: 'ok \u4f60', size: 20 }] }, /lines\[0\]\.text: U\+4F60 has no glyph in DejaVuSans/],
      [{ lines: [{ text: 'tab\there', size: 20 }] }, /lines\[0\]\.text: U\+0009 has no glyph/],
      [{ lines: [line], background: [0, 0, 256] }, /background must be \[r, g, b\] with integers 0 to 255, got \[0,0,256\]/],
      [{ lines: [line], foreground: [0, 0] }, /foreground must be \[r, g, b\]/],
      [{ lines: [line], margin: 513 }, /margin must be between 0 and 512, got 513/],
      [{ lines: [line], lineGap: -1 }, /lineGap must be between 0 and 512, got -1/],
      [{ lines: [line], angle: 45.5 }, /angle must be between -45 and 45, got 45.5/],
      [{ lines: [line], rotate180: 'yes' }, /rotate180 must be a boolean, got "yes"/],
      [{ lines: [{ text: 'W'.repeat(MAX_LINE_CHARS), size: 40 }] }, new RegExp(`the image would be \\d+×\\d+ pixels, more than ${MAX_SIDE} on a side`)],
    ];
    for (const [options, message] of bad) assert.throws(() => renderText(options as never), message, JSON.stringify(options).slice(0, 80));

    assert.equal(renderText({ lines: Array.from({ length: MAX_LINES }, () => ({ text: 'a', size: MIN_FONT_SIZE })) }).lines.length, MAX_LINES);
    assert.equal(renderText({ lines: [{ text: 'x'.repeat(MAX_LINE_CHARS), size: MIN_FONT_SIZE }], margin: 512, angle: -45 }).lines.length, 1);
    assert.equal(renderText({ lines: [{ text: 'Big', size: MAX_FONT_SIZE }], margin: 0, lineGap: 0, angle: 45 }).lines.length, 1);
  });
});

describe('npm run ocr:sample', () => {
  const CLI = fileURLToPath(new URL('../../generator/ocr-sample.ts', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'ocr-sample-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CLI, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(new Error(`ocr-sample did not finish: ${error.message}\n${stderr}`));
        else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      });
    });
  }

  it('writes the same PNG each run, and a JPEG for .jpg', async () => {
    const first = join(dir, 'a.png'), second = join(dir, 'b.png'), photo = join(dir, 'c.jpg');
    const runs = await Promise.all([run(['--out', first]), run([`--out=${second}`]), run(['--out', photo, '--text', 'Hello there|General 42', '--font', 'DejaVuSerif', '--size', '24', '--light-on-dark'])]);
    for (const { code, stderr } of runs) assert.equal(code, 0, stderr);
    assert.match(runs[0].stdout, /^wrote .*a\.png \(\d+×\d+, 3 lines\)/);
    assert.deepEqual(readFileSync(first), readFileSync(second));
    const png = decodePng(readFileSync(first));
    assert.equal(png.channels, 3);
    assert.ok(png.width > 300 && png.height > 100, `${png.width}×${png.height}`);
    const jpg = jpeg.decode(readFileSync(photo), { useTArray: true });
    assert.match(runs[2].stdout, /2 lines/);
    assert.ok(jpg.data[0]! < 60, 'light on dark: a dark corner');
  });

  it('refuses bad options with a clear message and writes nothing', async () => {
    const out = join(dir, 'never.png');
    const cases: [string[], RegExp][] = [
      [['--out', out, '--colour', 'red'], /Unknown option '--colour'/],
      [['--out', join(dir, 'x.gif')], /--out must name a \.png, \.jpg or \.jpeg file, got ".*x\.gif"/],
      [['--out', out, '--size', '5'], /--size must be a whole number of pixels from 6 to 200, got "5"/],
      [['--out', out, '--size', '2e1'], /--size must be a whole number/],
      [['--out', out, '--font', 'Comic'], /--font must be one of DejaVuSans/],
      [['--out', out, '--text', 'one||three'], /--text line 2 is empty/],
      [['--out', out, '--text', '\u4f60\u597d'], /renderText: lines\[0\]\.text: U\+4F60 has no glyph/],
      [['--out', out, 'stray'], /Unexpected argument 'stray'/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach(({ code, stderr }, i) => {
      assert.equal(code, 2, `${cases[i]![0].join(' ')}: exit ${code}`);
      assert.match(stderr, cases[i]![1]);
      assert.match(stderr, /^ocr-sample: .*\nusage: npm run ocr:sample/);
    });
    assert.equal(existsSync(out), false);
  });
});
