import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderText } from '../../generator/text-image.ts';
import { OCR_TEST_SET } from '../helpers/ocr-test-set.ts';

describe('the OCR accuracy test set', () => {
  it('has at least 30 lines across fonts, sizes, both contrasts and a 180° image', () => {
    const lines = OCR_TEST_SET.flatMap((image) => image.options.lines);
    assert.ok(lines.length >= 34, `${lines.length} lines`);
    assert.equal(new Set(OCR_TEST_SET.map((image) => image.name)).size, OCR_TEST_SET.length, 'names are unique');
    const fonts = new Set(lines.map((line) => line.font));
    for (const font of ['DejaVuSans', 'DejaVuSerif', 'DejaVuSansMono', 'DejaVuSans-Bold']) assert.ok(fonts.has(font as never), font);
    const sizes = lines.map((line) => line.size);
    assert.equal(Math.min(...sizes), 18);
    assert.equal(Math.max(...sizes), 40);
    const luminance = ([r, g, b]: readonly number[]): number => r! + g! + b!;
    assert.ok(OCR_TEST_SET.some((image) => luminance(image.options.background!) < luminance(image.options.foreground!)), 'light on dark');
    assert.ok(OCR_TEST_SET.filter((image) => image.options.rotate180).length === 1, 'one image upside down');
    assert.ok(OCR_TEST_SET.filter((image) => image.expected.length > 1).length >= 8, 'mostly multi-line');
    for (const image of OCR_TEST_SET) assert.deepEqual(image.expected, image.options.lines.map((line) => line.text), image.name);
  });

  it('renders every image within the detector\'s 960 px limit', () => {
    for (const entry of OCR_TEST_SET) {
      const image = renderText(entry.options);
      assert.ok(image.width <= 960 && image.height <= 960, `${entry.name}: ${image.width}×${image.height}`);
      assert.equal(image.lines.length, entry.expected.length);
    }
  });
});
