/**
 * readText (pipelines/ocr/lib/pipeline.ts) hands lines to the classifier
 * and the recogniser in runs bounded by count and summed recogniser width,
 * each run finished before the next is cut out, so a dense page never holds
 * all its lines' tensors at once; the lines come back in order, each with
 * its own box. The models here are small stand-ins (the runs are what is
 * tested; test/pipelines/ocr/ocr-pipeline.test.ts runs the real ones): the
 * detector finds N bars, and the recogniser reads each line as the symbol
 * of its index.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LINES_PER_RUN, readText, REC_WIDTH_PER_RUN, type OcrModels } from '../../../pipelines/ocr/lib/pipeline.ts';
import type { RgbImage } from '../../../pipelines/ocr/lib/types.ts';

/** A white image with `bars` black bars `barWidth` wide, 12 pixels high, 32 apart. */
function barsImage(bars: number, barWidth: number): RgbImage {
  const width = barWidth + 40;
  const height = bars * 32 + 40;
  const data = new Uint8Array(width * height * 3).fill(255);
  for (let b = 0; b < bars; b++) {
    for (let y = 20 + b * 32; y < 32 + b * 32; y++) data.fill(0, (y * width + 20) * 3, (y * width + 20 + barWidth) * 3);
  }
  return { width, height, data };
}

/** Stand-in models: the detector's map is the darkness of the image's pixels; the recogniser answers each line's run-wide index. */
function models(image: RgbImage, runs: number[][], inFlight: { now: number; most: number }): OcrModels {
  let lineIndex = 0;
  return {
    async detect(input) {
      // Dark pixels are text; the map is the detector input's size, sampled from the image.
      const data = new Float32Array(input.width * input.height);
      for (let y = 0; y < input.height; y++) {
        for (let x = 0; x < input.width; x++) {
          const sx = Math.min(image.width - 1, Math.floor((x * image.width) / input.width));
          const sy = Math.min(image.height - 1, Math.floor((y * image.height) / input.height));
          data[y * input.width + x] = image.data[(sy * image.width + sx) * 3]! < 128 ? 0.95 : 0;
        }
      }
      return { data, stride: input.width };
    },
    async classify(lines) {
      inFlight.now += lines.length;
      inFlight.most = Math.max(inFlight.most, inFlight.now);
      return lines.map(() => [0.99, 0.01]);
    },
    async recognize(lines) {
      runs.push(lines.map((l) => l.width));
      inFlight.now -= lines.length;
      // Class index + 1 is the dictionary symbol: line k reads as the k-th symbol.
      return lines.map(() => ({ best: Int32Array.of(1 + lineIndex++), prob: Float32Array.of(0.9), steps: 1 }));
    },
  };
}

const dictionary = Array.from({ length: 500 }, (_, i) => `<${i}>`);

test(`more than ${LINES_PER_RUN} lines go in runs of at most ${LINES_PER_RUN}, in order, each run done before the next`, async () => {
  const image = barsImage(150, 60);
  const runs: number[][] = [];
  const inFlight = { now: 0, most: 0 };
  const lines = await readText(image, models(image, runs, inFlight), dictionary, { limitSide: 4096 });
  assert.deepEqual(runs.map((r) => r.length), [64, 64, 22]);
  assert.ok(inFlight.most <= LINES_PER_RUN, `at most one run in flight, saw ${inFlight.most} lines`);
  assert.deepEqual(lines.map((l) => l.text), Array.from({ length: 150 }, (_, i) => `<${i}>`));
  // Top to bottom: each line's box lies below the one before.
  for (let i = 1; i < lines.length; i++) assert.ok(lines[i]!.box[0][1] > lines[i - 1]!.box[0][1]);
});

test(`wide lines go in runs of at most ${REC_WIDTH_PER_RUN} pixels of recogniser width`, async () => {
  // Each line is ~3,000 recogniser pixels wide: about 21 fit a run.
  const image = barsImage(40, 2000);
  const runs: number[][] = [];
  const lines = await readText(image, models(image, runs, { now: 0, most: 0 }), dictionary, { limitSide: 4096 });
  assert.equal(lines.length, 40);
  assert.ok(runs.length >= 2, `${runs.length} run(s)`);
  for (const run of runs) assert.ok(run.reduce((a, b) => a + b, 0) <= REC_WIDTH_PER_RUN, `a run of ${run.reduce((a, b) => a + b, 0)} pixels`);
});
