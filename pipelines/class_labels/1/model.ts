/**
 * class_labels: the arg-max of each row of PROBABILITIES, as a label name
 * (LABEL) and its probability (SCORE). The names are the config's "labels"
 * parameter, read and checked once per isolate in initialize(), so a
 * config with the wrong number of names fails the load instead of every
 * request.
 */
import type { InferRequest, InferResponse, ModelContext, ModelScript, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly PROBABILITIES: Tensor<'FP32'> };

export default class ClassLabels implements ModelScript<Inputs> {
  private labels: readonly string[] = [];

  initialize(ctx: ModelContext): void {
    const classes = ctx.config.input[0]?.dims[0] ?? 0;
    const labels = (ctx.config.parameters?.['labels']?.string_value ?? '').split(',').map((l) => l.trim()).filter((l) => l !== '');
    if (labels.length !== classes) {
      throw new Error(`parameters "labels" names ${labels.length} class(es), but PROBABILITIES has ${classes}: give one comma-separated name per class`);
    }
    this.labels = labels;
  }

  execute(requests: readonly InferRequest<Inputs>[]): InferResponse[] {
    const classes = this.labels.length;
    return requests.map(({ inputs: { PROBABILITIES } }) => {
      const rows = PROBABILITIES.shape[0]!;
      const label: string[] = [];
      const score = new Float32Array(rows);
      for (let row = 0; row < rows; row++) {
        const p = PROBABILITIES.data.subarray(row * classes, (row + 1) * classes);
        let best = 0;
        for (let c = 1; c < classes; c++) if (p[c]! > p[best]!) best = c;
        label.push(this.labels[best]!);
        score[row] = p[best]!;
      }
      return { outputs: { LABEL: { shape: [rows, 1], data: label }, SCORE: { shape: [rows, 1], data: score } } };
    });
  }
}
