/**
 * Models for the streaming tests: `streamer`, a decoupled script that sends
 * one response per token, steered by request parameters; `tick`, a quick
 * script the streamer may call between tokens (an await, as a real
 * generation loop has one per step); and `shout`, a script that is not
 * decoupled and batches, for the generate endpoint's conversions.
 */
import { makeRepository, type FixtureModel } from './fixture-repository.ts';
import { scriptConfig, writeScripts } from './script-fixtures.ts';

/**
 * Parameters: `tokens` (default 3) responses `<text> <i>`; `final_with_last`
 * flags the last token final, `close` closes with send(undefined, { final })
 * after them, otherwise the host closes the request; `fail_at` sends an error
 * response instead of that token; `throw_at` throws there; `bad_at` sends an
 * output the config does not declare; `tick` awaits the tick model after each
 * token; a send answered false (cancelled), or a tick cancelled with the
 * request, stops the loop and logs `stopped <id> at <i> after <n> sends`. A parameter starting with `triton_`
 * (the frontend's own) gets an error response naming it.
 */
export const STREAMER_SCRIPT = `
import type { DecoupledModelScript, DecoupledRequest, ModelContext, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly text_input: Tensor<'BYTES'> };

export default class Streamer implements DecoupledModelScript<Inputs> {
  async execute(requests: readonly DecoupledRequest<Inputs>[], ctx: ModelContext): Promise<void> {
    await Promise.all(requests.map((request) => this.generate(request, ctx)));
  }

  private async generate(request: DecoupledRequest<Inputs>, ctx: ModelContext): Promise<void> {
    const p = request.parameters;
    const reserved = Object.keys(p).filter((key) => key.startsWith('triton_'));
    if (reserved.length > 0) {
      request.send({ error: 'the model saw ' + reserved.join() }, { final: true });
      return;
    }
    const tokens = Number(p['tokens'] ?? 3);
    const text = request.inputs.text_input.data[0];
    let sent = 0;
    for (let i = 0; i < tokens; i++) {
      if (p['throw_at'] === i) throw new Error('boom at token ' + i);
      const last = i === tokens - 1;
      const options = { final: p['final_with_last'] === true && last };
      const ok = p['fail_at'] === i ? request.send({ error: 'token ' + i + ' failed' }, options)
        : p['bad_at'] === i ? request.send({ outputs: { nope: { datatype: 'BYTES', shape: [1], data: ['x'] } } } as never, options)
        : request.send({ outputs: { text_output: { shape: [1], data: [text + ' ' + i] } } }, options);
      if (!ok) {
        ctx.log.info('stopped ' + String(p['id'] ?? '') + ' at ' + i + ' after ' + sent + ' sends, isCancelled ' + request.isCancelled());
        return;
      }
      sent++;
      if (p['tick'] === true) {
        try {
          await ctx.infer({ model: 'tick', inputs: { X: { datatype: 'INT32', shape: [1], data: [i] } } });
        } catch (err) {
          // The client went away while the tick ran: the call was cancelled with it.
          if ((err as { code?: string }).code !== 'CANCELLED') throw err;
          ctx.log.info('stopped ' + String(p['id'] ?? '') + ' at ' + (i + 1) + ' after ' + sent + ' sends, isCancelled ' + request.isCancelled());
          return;
        }
      }
    }
    if (p['close'] === true) request.send(undefined, { final: true });
  }
}
`;

export const TICK_SCRIPT = `export default class {
  execute(requests: any[]) {
    return requests.map((r) => ({ outputs: { Y: { shape: r.inputs.X.shape, data: r.inputs.X.data } } }));
  }
}
`;

/** Upper-cases text_input; LENGTH is its length times `repeat` (INT32), both batched. */
export const SHOUT_SCRIPT = `export default class {
  execute(requests: any[]) {
    return requests.map((r) => {
      const text: string[] = r.inputs.text_input.data;
      const repeat = r.inputs.repeat ? r.inputs.repeat.data : new Int32Array(text.length).fill(1);
      return { outputs: {
        text_output: { shape: r.inputs.text_input.shape, data: text.map((t, i) => t.toUpperCase().repeat(repeat[i])) },
        LENGTH: { shape: r.inputs.text_input.shape, data: text.map((t, i) => t.length * repeat[i]) },
      } };
    });
  }
}
`;

export const DECOUPLED_POLICY = 'model_transaction_policy { decoupled: true }';

/** A repository with streamer, tick and shout; `extra` adds models (an ONNX model, say). */
export async function makeStreamingRepository(extra: Readonly<Record<string, FixtureModel>> = {}): Promise<string> {
  const root = await makeRepository({
    streamer: {
      config: scriptConfig({
        maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [1]]],
        executeTimeoutMs: 60_000, extra: DECOUPLED_POLICY,
      }),
      versions: {},
    },
    tick: { config: scriptConfig({ maxBatchSize: 0, inputs: [['X', 'TYPE_INT32', [1]]], outputs: [['Y', 'TYPE_INT32', [1]]] }), versions: {} },
    shout: {
      config: scriptConfig({
        maxBatchSize: 8,
        inputs: [['text_input', 'TYPE_STRING', [1]], ['repeat', 'TYPE_INT32', [1]]],
        outputs: [['text_output', 'TYPE_STRING', [1]], ['LENGTH', 'TYPE_INT32', [1]]],
        extra: 'dynamic_batching { }',
      }).replace('{ name: "repeat" data_type: TYPE_INT32 dims: [ 1 ] }', '{ name: "repeat" data_type: TYPE_INT32 dims: [ 1 ] optional: true }'),
      versions: {},
    },
    ...extra,
  });
  await writeScripts(root, { streamer: { 1: STREAMER_SCRIPT }, tick: { 1: TICK_SCRIPT }, shout: { 1: SHOUT_SCRIPT } });
  return root;
}
