/**
 * text_classifier_bls: featurize, classify, name, through ctx.infer. The
 * requests of a batch run side by side (Promise.all), so each downstream
 * model's batcher can gather them again. A failing call fails only its own
 * request: the error names the step, then gives the called model's message.
 */
import type {
  InferError, InferRequest, InferResponse, ModelContext, ModelScript, Tensor,
} from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly TEXT: Tensor<'BYTES'> };

export default class TextClassifierBls implements ModelScript<Inputs> {
  execute(requests: readonly InferRequest<Inputs>[], ctx: ModelContext): Promise<InferResponse[]> {
    return Promise.all(requests.map((request) => classify(request, ctx)));
  }
}

async function classify({ inputs: { TEXT } }: InferRequest<Inputs>, ctx: ModelContext): Promise<InferResponse> {
  let step = 'text_features';
  try {
    const features = await ctx.infer<{ FEATURES: Tensor<'FP32'> }>({ model: 'text_features', inputs: { TEXT } });
    step = 'feature_classifier';
    const classified = await ctx.infer<{ PROBABILITIES: Tensor<'FP32'> }>({
      model: 'feature_classifier', inputs: { FEATURES: features.outputs.FEATURES }, outputs: ['PROBABILITIES'],
    });
    step = 'class_labels';
    const named = await ctx.infer<{ LABEL: Tensor<'BYTES'>; SCORE: Tensor<'FP32'> }>({
      model: 'class_labels', inputs: { PROBABILITIES: classified.outputs.PROBABILITIES },
    });
    return { outputs: { LABEL: named.outputs.LABEL, SCORE: named.outputs.SCORE } };
  } catch (err) {
    const { code, message } = err as InferError;
    // A member that is not being served is the operator's problem, worth a log line; anything else is this request's.
    if (code === 'MODEL_NOT_FOUND' || code === 'MODEL_VERSION_UNAVAILABLE') ctx.log.error(`${step} is not available: ${message}`);
    return { error: `step '${step}' failed: ${message}` };
  }
}
