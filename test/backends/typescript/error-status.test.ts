/**
 * A script's error response may say whose fault it is with `status`, one
 * of Triton's TritonError codes: INVALID_ARG answers 400 / INVALID_ARGUMENT
 * (a bad image, a bad parameter), and so on. Left out it is INTERNAL (500);
 * a status that is not one of them fails the request as INTERNAL, naming
 * the bad value and the ones allowed. Each request of a batch keeps its own.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SwitchyardError } from '../../../engine/errors.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { bytesTensor, scriptConfig, writeScripts } from '../../helpers/script-fixtures.ts';

/** TEXT is the status to answer with ('none' leaves it out, 'ok' answers). */
const SCRIPT = `
export default class {
  execute(requests: any[]) {
    return requests.map((r: any) => {
      const s = r.inputs.TEXT.data[0];
      if (s === 'ok') return { outputs: { Y: { shape: [1, 1], data: ['fine'] } } };
      if (s === 'none') return { error: 'something broke' };
      if (s === 'number') return { error: 'odd', status: 400 };
      return { error: 'the input is bad: ' + s, status: s };
    });
  }
}
`;

let root: string;
let engine: InferenceEngine;
before(async () => {
  root = await makeRepository({ status: { config: scriptConfig({ inputs: [['TEXT', 'TYPE_STRING', [1]]], outputs: [['Y', 'TYPE_STRING', [1]]] }), versions: {} } });
  await writeScripts(root, { status: { 1: SCRIPT } });
  engine = await startEngine(root);
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

async function failure(text: string): Promise<SwitchyardError> {
  try {
    await engine.infer({ modelName: 'status', inputs: [bytesTensor('TEXT', [1, 1], [text])] });
  } catch (err) {
    assert.ok(err instanceof SwitchyardError);
    return err;
  }
  throw new Error('expected the request to fail');
}

for (const [status, http, grpc] of [['INVALID_ARG', 400, 3], ['NOT_FOUND', 404, 5], ['UNAVAILABLE', 503, 14], ['UNSUPPORTED', 501, 12], ['INTERNAL', 500, 13]] as const) {
  test(`status ${status}: HTTP ${http}, gRPC ${grpc}, the script's message kept`, async () => {
    const err = await failure(status);
    assert.equal(err.httpStatus, http);
    assert.equal(err.grpcCode, grpc);
    assert.equal(err.message, `inference failed in model 'status': the input is bad: ${status}`);
  });
}

test('no status is INTERNAL; a status not in the list, or not a string, is INTERNAL naming it and the allowed ones', async () => {
  assert.equal((await failure('none')).httpStatus, 500);
  const unknown = await failure('TEAPOT');
  assert.equal(unknown.httpStatus, 500);
  assert.match(unknown.message, /the error response has status 'TEAPOT'; use one of INVALID_ARG, NOT_FOUND, .*CANCELLED \(or leave it out: INTERNAL\)\. Its error: the input is bad: TEAPOT/);
  assert.match((await failure('number')).message, /has status number; use one of/);
});

test('in one batch, each request keeps its own outcome', async () => {
  const answers = await Promise.allSettled(['ok', 'INVALID_ARG', 'ok'].map((text) => engine.infer({ modelName: 'status', inputs: [bytesTensor('TEXT', [1, 1], [text])] })));
  assert.deepEqual(answers.map((a) => a.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.equal(((answers[1] as PromiseRejectedResult).reason as SwitchyardError).httpStatus, 400);
});
