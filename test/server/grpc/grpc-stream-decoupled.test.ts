/**
 * ModelStreamInfer with a decoupled script over a real grpc-js connection:
 * N responses per request, each flagged with triton_final_response as
 * Triton flags them; the empty final only for requests that set
 * triton_enable_empty_final_response; zero responses; error responses and a
 * throw inside the stream, which stays open; a model that is not decoupled
 * on the same stream; unary ModelInfer refused; and a cancelled call stops
 * the generation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeStreamingRepository } from '../../helpers/decoupled-fixtures.ts';
import { removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, strings, type Message } from '../../helpers/grpc-raw-client.ts';
import { capturingLogger, within, type CapturingLogger } from '../../helpers/script-fixtures.ts';
import { waitForLogLine } from '../../helpers/wait.ts';

let root: string;
let fixture: GrpcFixture;
let client: RawGrpcClient;
let logger: CapturingLogger;

before(async () => {
  root = await makeStreamingRepository();
  logger = capturingLogger();
  fixture = await startGrpc(root, { logger });
  client = new RawGrpcClient(fixture.address);
});
after(async () => {
  client.close();
  await fixture.close();
  await removeRepository(root);
});

type Params = Record<string, number | boolean | string>;

function parameter(value: number | boolean | string): Message {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'string') return { string_param: value };
  return { int64_param: value };
}

function streamerRequest(id: string, params: Params, text = 'tok'): Message {
  return {
    model_name: 'streamer', id,
    inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(text)] } }],
    parameters: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, parameter(v)])),
  };
}

/** Each message as `<id>: <text>` / `<id>: error <message>` / `<id>: (empty)`, with '!' when flagged final. */
function show(message: Message): string {
  const response = message['infer_response'] ?? {};
  const final = response['parameters']?.['triton_final_response'];
  assert.equal(final?.['parameter_choice'] ?? 'bool_param', 'bool_param');
  const flag = final?.['bool_param'] === true ? '!' : '';
  const body = message['error_message'] ? `error ${message['error_message']}`
    : response['outputs']?.length ? strings(response['raw_output_contents']?.[0]).join() : '(empty)';
  return `${response['id']}: ${body}${flag}`;
}

const streamAll = (messages: readonly Message[]): Promise<Message[]> => within(15_000, 'the stream', client.streamAll(messages));

describe('ModelStreamInfer with a decoupled model', () => {
  test('N responses, none flagged final when the host closes the request and no empty final was asked for', async () => {
    const received = await streamAll([streamerRequest('a', { tokens: 4 })]);
    assert.deepEqual(received.map(show), ['a: tok 0', 'a: tok 1', 'a: tok 2', 'a: tok 3']);
    assert.equal(received[0]!['infer_response']['model_name'], 'streamer');
    assert.equal(received[0]!['infer_response']['model_version'], '1');
    assert.deepEqual(received[0]!['infer_response']['outputs'][0]['shape'].map(Number), [1]);
  });

  test('triton_enable_empty_final_response: the close arrives as an empty response flagged final', async () => {
    const received = await streamAll([streamerRequest('b', { tokens: 3, triton_enable_empty_final_response: true })]);
    assert.deepEqual(received.map(show), ['b: tok 0', 'b: tok 1', 'b: tok 2', 'b: (empty)!']);
    const last = received[3]!['infer_response'];
    assert.equal(last['model_name'], 'streamer');
    assert.deepEqual(last['outputs'], []);
  });

  test('the script flags its last response final: it carries triton_final_response true', async () => {
    const received = await streamAll([streamerRequest('c', { tokens: 3, final_with_last: true, triton_enable_empty_final_response: true })]);
    assert.deepEqual(received.map(show), ['c: tok 0', 'c: tok 1', 'c: tok 2!']);
  });

  test('the frontend keeps triton_enable_empty_final_response from the model', async () => {
    // The streamer answers an error naming any triton_ parameter it sees: it must see none.
    const received = await streamAll([streamerRequest('d', { tokens: 1, triton_enable_empty_final_response: false })]);
    assert.deepEqual(received.map(show), ['d: tok 0']);
    const invalid = await streamAll([streamerRequest('e', { tokens: 1, triton_enable_empty_final_response: 'yes' })]);
    assert.deepEqual(invalid.map(show), ["e: error invalid value type for 'triton_enable_empty_final_response' parameter, expected bool_param."]);
  });

  test('zero responses: nothing at all, or only the empty final when asked for', async () => {
    assert.deepEqual((await streamAll([streamerRequest('z', { tokens: 0 })])).map(show), []);
    assert.deepEqual((await streamAll([streamerRequest('z', { tokens: 0, triton_enable_empty_final_response: true })])).map(show), ['z: (empty)!']);
  });

  test('an error response mid-stream is one message; the request and the stream go on', async () => {
    const received = await streamAll([streamerRequest('f', { tokens: 3, fail_at: 1, triton_enable_empty_final_response: true })]);
    assert.deepEqual(received.map(show), ['f: tok 0', "f: error inference failed in model 'streamer': token 1 failed", 'f: tok 2', 'f: (empty)!']);
    assert.equal(received[1]!['infer_response']['model_name'], 'streamer');
  });

  test('a throw ends the request with a final error message; later requests on the stream still answer', async () => {
    const received = await streamAll([
      streamerRequest('g', { tokens: 5, throw_at: 2 }),
      { model_name: 'shout', id: 'h', inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('hey')] } }] },
    ]);
    const shown = received.map(show);
    assert.deepEqual(shown.filter((s) => s.startsWith('g:')), [
      'g: tok 0', 'g: tok 1', "g: error inference failed in model 'streamer': execute() threw: boom at token 2!",
    ]);
    // A model that is not decoupled answers once, flagged final, as Triton flags it.
    assert.deepEqual(shown.filter((s) => s.startsWith('h:')), ['h: HEY!']);
  });

  test('two requests on one stream each get their own responses, in order within each', async () => {
    const received = await streamAll([streamerRequest('x', { tokens: 3 }, 'x'), streamerRequest('y', { tokens: 2 }, 'y')]);
    const shown = received.map(show);
    assert.deepEqual(shown.filter((s) => s.startsWith('x:')), ['x: x 0', 'x: x 1', 'x: x 2']);
    assert.deepEqual(shown.filter((s) => s.startsWith('y:')), ['y: y 0', 'y: y 1']);
  });

  test('a request refused before it runs is reported with its id, and the stream goes on', async () => {
    const received = await streamAll([
      { ...streamerRequest('bad', {}), inputs: [] },
      streamerRequest('ok', { tokens: 1 }),
    ]);
    assert.match(show(received[0]!), /^bad: error expected 1 inputs but got 0/);
    assert.deepEqual(received.slice(1).map(show), ['ok: tok 0']);
  });

  test('a cancelled call stops the generation', async () => {
    const stream = client.stream();
    let seen = 0;
    const closed = new Promise<void>((resolve) => {
      stream.on('data', () => {
        if (++seen === 5) stream.cancel();
      });
      stream.on('error', () => resolve());
      stream.on('end', () => resolve());
    });
    stream.write(streamerRequest('cancel', { tokens: 100_000, tick: true, id: 'grpc-cancel' }));
    await within(15_000, 'the cancelled call', closed);
    const line = await waitForLogLine(logger, 'stopped grpc-cancel', 10_000);
    const sends = Number(/after (\d+) sends/.exec(line)![1]);
    // A few more may leave before the cancel lands, more on a loaded machine; one that ran on would send 100,000.
    assert.ok(sends < 2000, `the script stopped soon after the cancel: ${line}`);
  });
});

describe('unary ModelInfer on a decoupled model', () => {
  test('is refused with UNIMPLEMENTED, naming the model and ModelStreamInfer', async () => {
    const outcome = await client.call('ModelInfer', streamerRequest('u', { tokens: 1 }));
    assert.equal(outcome.error?.code, 12);
    assert.match(outcome.error!.details, /doesn't support models with decoupled transaction policy: model 'streamer'.*ModelStreamInfer/);
  });
});

