/**
 * The bundled OCR pipeline (pipelines/ocr with ocr_det, ocr_cls, ocr_rec),
 * copied out of the project and served from the copy, as a user would
 * with --model-repository=<copy>.
 *
 * Accuracy: every image of the fixed test set (test/helpers/ocr-test-set.ts,
 * 11 images, 37 lines, rendered here with DejaVu fonts from npm) is read
 * through HTTP, and each expected line is scored against the text found in
 * its place: 1 - edit distance / length after NFKC, with whitespace removed
 * (test/helpers/ocr-score.ts). The whole set must reach 0.95; the
 * per-image figures are printed.
 *
 * Then the other ways in (gRPC, JSON with base64, JPEG) and the bad inputs,
 * each refused naming the input or parameter while the server keeps serving.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_SAMPLE_TEXT } from '../../../generator/ocr-sample.ts';
import { encodePng, encodeJpeg, renderText, type RenderedText } from '../../../generator/text-image.ts';
import { PIPELINES_DIR } from '../../../pipelines/generate.ts';
import { startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { characterAccuracy, editDistance, normalizeForScoring } from '../../helpers/ocr-score.ts';
import { OCR_TEST_SET } from '../../helpers/ocr-test-set.ts';

const execFileAsync = promisify(execFile);
/** The project's folder, where `npm run ocr:sample` runs. */
const PROJECT_DIR = dirname(PIPELINES_DIR);
const OCR_MODELS = ['ocr', 'ocr_det', 'ocr_cls', 'ocr_rec', 'ocr_ctc', 'ocr_recognize'];
const REQUIRED_ACCURACY = 0.95;

interface OcrAnswer {
  readonly status: number;
  readonly lines: { text: string; score: number; box: number[][] }[];
  readonly error?: string;
}

let repo: string;
let fixture: DualFixture;
let grpcClient: RawGrpcClient;

before(async () => {
  repo = await mkdtemp(join(tmpdir(), 'switchyard-ocr-'));
  for (const model of OCR_MODELS) await cp(join(PIPELINES_DIR, model), join(repo, model), { recursive: true });
  fixture = await startBoth(repo);
  grpcClient = new RawGrpcClient(fixture.grpcAddress);
});
after(async () => {
  grpcClient?.close();
  await fixture?.close();
  await rm(repo, { recursive: true, force: true });
});

/** POSTs `image` as the binary-data extension sends a BYTES element: a 4-byte length, then the bytes. */
async function ocrBinary(image: Uint8Array, parameters: Record<string, unknown> = {}): Promise<OcrAnswer> {
  const element = Buffer.concat([Buffer.from(Uint32Array.of(image.length).buffer), Buffer.from(image)]);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: element.length } }],
    ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
  }));
  const res = await fetch(`${fixture.httpUrl}/v2/models/ocr/infer`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
    body: Buffer.concat([header, element]),
  });
  return answerOf(res);
}

async function answerOf(res: Response): Promise<OcrAnswer> {
  const body = await res.json() as { error?: string; outputs?: { name: string; shape: number[]; data: unknown[] }[] };
  if (res.status !== 200) return { status: res.status, lines: [], error: body.error! };
  const out = Object.fromEntries(body.outputs!.map((o) => [o.name, o]));
  const n = out['text']!.shape[0]!;
  assert.deepEqual(out['score']!.shape, [n]);
  assert.deepEqual(out['box']!.shape, [n, 4, 2]);
  const box = out['box']!.data as number[];
  return {
    status: 200,
    lines: (out['text']!.data as string[]).map((text, i) => ({
      text, score: out['score']!.data[i] as number, box: [0, 1, 2, 3].map((c) => [box[i * 8 + c * 2]!, box[i * 8 + c * 2 + 1]!]),
    })),
  };
}

/**
 * The text found where each rendered line lies: the answers whose box
 * centre falls within the line's band, in reading order (right to left for
 * a line turned upside down).
 */
function textPerLine(rendered: RenderedText, answer: OcrAnswer): string[] {
  return rendered.lines.map((line) => {
    const ys = line.box.map((p) => p[1]);
    const top = Math.min(...ys);
    const bottom = Math.max(...ys);
    const reversed = line.box[0][0] > line.box[1][0];
    const centre = (b: number[][]): [number, number] => [b.reduce((s, p) => s + p[0]!, 0) / 4, b.reduce((s, p) => s + p[1]!, 0) / 4];
    return answer.lines
      .filter((a) => { const [, cy] = centre(a.box); return cy >= top && cy <= bottom; })
      .sort((a, b) => (centre(a.box)[0] - centre(b.box)[0]) * (reversed ? -1 : 1))
      .map((a) => a.text).join(' ');
  });
}

describe('accuracy on the rendered test set', () => {
  test(`character accuracy over ${OCR_TEST_SET.reduce((n, i) => n + i.expected.length, 0)} lines is at least ${REQUIRED_ACCURACY}`, async (t) => {
    let errors = 0;
    let length = 0;
    const rows: string[] = [];
    for (const item of OCR_TEST_SET) {
      const rendered = renderText(item.options);
      const answer = await ocrBinary(encodePng(rendered));
      assert.equal(answer.status, 200, answer.error);
      const found = textPerLine(rendered, answer);
      let imageErrors = 0;
      let imageLength = 0;
      item.expected.forEach((expected, i) => {
        const want = normalizeForScoring(expected);
        imageErrors += Math.min(want.length, editDistance(want, normalizeForScoring(found[i]!)));
        imageLength += want.length;
        if (characterAccuracy(expected, found[i]!) < 1) rows.push(`    '${expected}' read as '${found[i]}'`);
      });
      errors += imageErrors;
      length += imageLength;
      t.diagnostic(`${item.name}: ${(1 - imageErrors / imageLength).toFixed(3)} (${item.expected.length} lines, ${answer.lines.length} found)`);
    }
    for (const row of rows) t.diagnostic(row);
    const accuracy = 1 - errors / length;
    t.diagnostic(`overall: ${accuracy.toFixed(4)} over ${length} characters`);
    assert.ok(accuracy >= REQUIRED_ACCURACY, `character accuracy ${accuracy.toFixed(4)} is under ${REQUIRED_ACCURACY}`);
  });
});

describe('ways in', () => {
  const sample = renderText({ lines: [{ text: 'Switchyard reads this line', size: 28 }, { text: 'Receipt 2026-12-07 total 42.50', size: 28 }] });
  const expected = ['Switchyardreadsthisline', 'Receipt2026-12-07total42.50'];
  const texts = (answer: OcrAnswer): string[] => answer.lines.map((l) => normalizeForScoring(l.text));

  test('HTTP binary PNG: lines top to bottom, boxes inside the image, scores above drop_score', async () => {
    const answer = await ocrBinary(encodePng(sample));
    assert.deepEqual(texts(answer), expected);
    for (const line of answer.lines) {
      assert.ok(line.score >= 0.5 && line.score <= 1, `score ${line.score}`);
      for (const [x, y] of line.box) assert.ok(x! >= 0 && x! < sample.width && y! >= 0 && y! < sample.height, `corner ${x},${y}`);
    }
    assert.ok(answer.lines[0]!.box[0]![1]! < answer.lines[1]!.box[0]![1]!, 'the first line is above the second');
  });

  test('the README\'s example: npm run ocr:sample, then its curl body (base64 JSON), reads the sample\'s lines', async () => {
    const out = join(repo, 'sample.png');
    await execFileAsync(process.execPath, ['--no-node-snapshot', '--import', 'tsx', 'generator/ocr-sample.ts', '--out', out], { cwd: PROJECT_DIR });
    const body = `{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],\n  "data":["${(await readFile(out)).toString('base64')}"]}]}`;
    const answer = await answerOf(await fetch(`${fixture.httpUrl}/v2/models/ocr/infer`, { method: 'POST', body }));
    assert.deepEqual(texts(answer), DEFAULT_SAMPLE_TEXT.split('|').map(normalizeForScoring));
  });

  test('a JPEG reads the same', async () => {
    assert.deepEqual(texts(await ocrBinary(encodeJpeg(sample, 90))), expected);
  });

  test('HTTP JSON with the image as base64 text', async () => {
    const res = await fetch(`${fixture.httpUrl}/v2/models/ocr/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [Buffer.from(encodePng(sample)).toString('base64')] }] }),
    });
    assert.deepEqual(texts(await answerOf(res)), expected);
  });

  test('gRPC ModelInfer with the image in bytes_contents', async () => {
    const { response, error } = await grpcClient.call('ModelInfer', {
      model_name: 'ocr', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [encodePng(sample)] } }],
    });
    assert.equal(error, undefined, error?.details);
    const outputs = response!['outputs'] as Message[];
    assert.deepEqual(outputs.map((o) => o['name']), ['text', 'score', 'box']);
    const raw = Buffer.from((response!['raw_output_contents'] as Uint8Array[])[0]!);
    const lines: string[] = [];
    for (let at = 0; at < raw.length;) {
      const n = raw.readUInt32LE(at);
      lines.push(normalizeForScoring(raw.subarray(at + 4, at + 4 + n).toString('utf8')));
      at += 4 + n;
    }
    assert.deepEqual(lines, expected);
  });

  test('an image with no text: no lines, shapes [0] and [0, 4, 2]', async () => {
    const blank = { width: 320, height: 200, data: new Uint8Array(320 * 200 * 3).fill(255) };
    const answer = await ocrBinary(encodePng(blank));
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.lines, []);
  });

  test('request parameters: drop_score 1 keeps nothing; use_angle_cls false still reads upright text', async () => {
    assert.deepEqual((await ocrBinary(encodePng(sample), { drop_score: 1 })).lines, []);
    assert.deepEqual(texts(await ocrBinary(encodePng(sample), { use_angle_cls: false })), expected);
  });
});

describe('long lines', () => {
  const text = 'The quick brown fox jumps over the lazy dog 0123456789 '.repeat(3).slice(0, 120);
  const want = normalizeForScoring(text);

  test('lines of 120 characters, upright and upside down, all read with the classifier on', async () => {
    // Squeezed whole into the classifier's 192 x 48, such lines were judged upside down and lost.
    for (const rotate180 of [false, true]) {
      const page = renderText({ lines: Array.from({ length: 8 }, () => ({ text, size: 18 })), margin: 16, lineGap: 8, rotate180 });
      const answer = await ocrBinary(encodePng(page));
      assert.equal(answer.status, 200);
      const read = answer.lines.map((l) => characterAccuracy(text, l.text));
      assert.equal(read.length, 8, `rotate180 ${rotate180}: ${answer.lines.map((l) => l.text).join(' | ')}`);
      for (const accuracy of read) assert.ok(accuracy >= 0.95, `rotate180 ${rotate180}: accuracy ${accuracy} for one line of '${want}'`);
    }
  });
});

describe('bad inputs', () => {
  const png = encodePng(renderText({ lines: [{ text: 'still serving', size: 28 }] }));
  const refusals: [string, Uint8Array, Record<string, unknown>, RegExp][] = [
    ['bytes that are no image', new TextEncoder().encode('not an image at all!'), {}, /input 'image': the image is \d+ bytes that are neither a PNG nor a JPEG/],
    ['a truncated PNG', png.subarray(0, 100), {}, /input 'image': the PNG does not decode/],
    ['a PNG header claiming 100000 x 100000 pixels', hugePngHeader(), {}, /input 'image': the image is 100000 x 100000 pixels, over the 25000000 pixels this model decodes/],
    ['a truncated JPEG', encodeJpeg(renderText({ lines: [{ text: 'x y', size: 20 }] })).subarray(0, 200), {}, /input 'image': the JPEG does not decode/],
    ['det_limit_side_len 31', png, { det_limit_side_len: 31 }, /parameter 'det_limit_side_len' is '31': use a whole number of pixels from 32 to 4096/],
    ['det_limit_side_len 4097', png, { det_limit_side_len: 4097 }, /parameter 'det_limit_side_len' is '4097'/],
    ['drop_score 1.5', png, { drop_score: 1.5 }, /parameter 'drop_score' is '1.5': use a number from 0 to 1/],
    ['use_angle_cls "maybe"', png, { use_angle_cls: 'maybe' }, /parameter 'use_angle_cls' is 'maybe': use true or false/],
  ];
  for (const [what, bytes, parameters, expected] of refusals) {
    test(`${what}: 400 naming it, and the next image is read`, async () => {
      const answer = await ocrBinary(bytes, parameters);
      assert.equal(answer.status, 400, JSON.stringify(answer));
      assert.match(answer.error!, expected);
      assert.ok(answer.error!.length < 1000);
      assert.deepEqual((await ocrBinary(png)).lines.map((l) => normalizeForScoring(l.text)), ['stillserving']);
    });
  }

  test('the largest side accepted, 4096, reads; gRPC refuses bad bytes with INVALID_ARGUMENT', async () => {
    assert.equal((await ocrBinary(png, { det_limit_side_len: 4096 })).status, 200);
    const { error } = await grpcClient.call('ModelInfer', {
      model_name: 'ocr', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('nope')] } }],
    });
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, error?.details);
    assert.match(error!.details, /input 'image'/);
  });
});

/** A PNG signature and header chunk for a 100000 x 100000 image, and nothing after: refused before any pixel is allocated. */
function hugePngHeader(): Uint8Array {
  const out = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(out, 0);
  out.writeUInt32BE(13, 8);
  out.write('IHDR', 12, 'latin1');
  out.writeUInt32BE(100_000, 16);
  out.writeUInt32BE(100_000, 20);
  out.set([8, 2, 0, 0, 0], 24);
  return out;
}
