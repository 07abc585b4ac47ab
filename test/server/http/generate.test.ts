/**
 * Triton's generate extension over a real HTTP port: generate_stream as
 * server-sent events from a decoupled script (N tokens, none, an error
 * response, a throw, an error first), generate's one-response rule, a model
 * that is not decoupled over both routes, the JSON-to-tensor conversions
 * and their errors, unary infer refused for a decoupled model, and a client
 * that disconnects mid-stream stopping the generation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { makeStreamingRepository } from '../../helpers/decoupled-fixtures.ts';
import { removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { capturingLogger, within, type CapturingLogger } from '../../helpers/script-fixtures.ts';
import { waitForLogLine } from '../../helpers/wait.ts';

let root: string;
let fixture: HttpFixture;
let logger: CapturingLogger;

before(async () => {
  root = await makeStreamingRepository();
  logger = capturingLogger();
  fixture = await startHttp(root, { logger });
});
after(async () => {
  await fixture.close();
  await removeRepository(root);
});

const post = (path: string, body: unknown, init: RequestInit = {}): Promise<Response> =>
  fetch(`${fixture.url}${path}`, { method: 'POST', body: typeof body === 'string' || Buffer.isBuffer(body) ? body as BodyInit : JSON.stringify(body), ...init });

/** The data of each event of an SSE body, parsed; every event must be exactly `data: <json>\n\n`. */
function events(text: string): unknown[] {
  if (text === '') return [];
  assert.ok(text.endsWith('\n\n'), `the body ends with a blank line: ${JSON.stringify(text)}`);
  return text.slice(0, -2).split('\n\n').map((chunk) => {
    assert.ok(chunk.startsWith('data: ') && !chunk.includes('\n'), `one data line per event: ${JSON.stringify(chunk)}`);
    return JSON.parse(chunk.slice('data: '.length));
  });
}

async function stream(model: string, body: unknown): Promise<{ status: number; type: string | null; events: unknown[] }> {
  const response = await post(`/v2/models/${model}/generate_stream`, body);
  return { status: response.status, type: response.headers.get('content-type'), events: events(await response.text()) };
}

const token = (i: number, text = 'tok'): unknown => ({ model_name: 'streamer', model_version: '1', text_output: `${text} ${i}` });

describe('generate_stream with a decoupled model', () => {
  test('one event per response, as text/event-stream', async () => {
    const got = await stream('streamer', { text_input: 'tok', parameters: { tokens: 4 } });
    assert.equal(got.status, 200);
    assert.equal(got.type, 'text/event-stream; charset=utf-8');
    assert.deepEqual(got.events, [0, 1, 2, 3].map((i) => token(i)));
  });

  test('the versioned route, and top-level fields that name no input going to the model as parameters', async () => {
    const got = await stream('streamer/versions/1', { text_input: 'v', tokens: 2 });
    assert.deepEqual(got.events, [token(0, 'v'), token(1, 'v')]);
  });

  test('zero responses: status 200 and no event', async () => {
    const got = await stream('streamer', { text_input: 'tok', parameters: { tokens: 0 } });
    assert.equal(got.status, 200);
    assert.deepEqual(got.events, []);
  });

  test('an error response mid-stream is an {"error"} event, and the stream goes on', async () => {
    const got = await stream('streamer', { text_input: 'tok', parameters: { tokens: 3, fail_at: 1 } });
    assert.equal(got.status, 200);
    assert.deepEqual(got.events, [token(0), { error: "inference failed in model 'streamer': token 1 failed" }, token(2)]);
  });

  test('a throw mid-stream ends it with an error event', async () => {
    const got = await stream('streamer', { text_input: 'tok', parameters: { tokens: 5, throw_at: 2 } });
    assert.deepEqual(got.events, [token(0), token(1), { error: "inference failed in model 'streamer': execute() threw: boom at token 2" }]);
  });

  test('an error as the first response sets the status, as Triton does', async () => {
    const got = await stream('streamer', { text_input: 'tok', parameters: { tokens: 2, fail_at: 0 } });
    assert.equal(got.status, 500);
    assert.equal(got.type, 'text/event-stream; charset=utf-8');
    assert.deepEqual(got.events, [{ error: "inference failed in model 'streamer': token 0 failed" }, token(1)]);
  });
});

describe('generate', () => {
  test('a decoupled model that sends exactly one response answers one JSON object', async () => {
    const response = await post('/v2/models/streamer/generate', { text_input: 'one', parameters: { tokens: 1 } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), token(0, 'one'));
  });

  for (const [tokens, got] of [[3, 'more than one'], [0, 'none']] as const) {
    test(`a decoupled model that sends ${got} is a 400 pointing at generate_stream`, async () => {
      const response = await post('/v2/models/streamer/generate', { text_input: 'x', parameters: { tokens } });
      assert.equal(response.status, 400);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(await response.json(), {
        error: `generate expects model to produce exactly 1 response, but model 'streamer' produced ${got}; ` +
          'POST /v2/models/streamer/generate_stream takes any number',
      });
    });
  }

  test('a model that is not decoupled: strings and numbers become tensors shaped to the inputs, outputs come back flat', async () => {
    const response = await post('/v2/models/shout/generate', { text_input: 'hi', repeat: 2 });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { model_name: 'shout', model_version: '1', text_output: 'HIHI', LENGTH: 4 });
    // An optional input may be left out.
    assert.deepEqual(await (await post('/v2/models/shout/generate', { text_input: 'a' })).json(),
      { model_name: 'shout', model_version: '1', text_output: 'A', LENGTH: 1 });
  });

  test('an array fills the batch dimension; outputs of several elements come back as arrays', async () => {
    const response = await post('/v2/models/shout/generate', { text_input: ['ab', 'c'], repeat: [1, 3] });
    assert.deepEqual(await response.json(), { model_name: 'shout', model_version: '1', text_output: ['AB', 'CCC'], LENGTH: [2, 3] });
  });

  test('generate_stream on a model that is not decoupled: one event', async () => {
    const got = await stream('shout', { text_input: 'yo' });
    assert.deepEqual(got.events, [{ model_name: 'shout', model_version: '1', text_output: 'YO', LENGTH: 2 }]);
  });
});

describe('bad generate requests', () => {
  const cases: ReadonlyArray<readonly [what: string, model: string, body: unknown, status: number, error: RegExp]> = [
    ['a misspelt input is named, with the input it was probably meant as', 'streamer', { text_inptu: 'x' }, 400,
      /expected 1 inputs but got 0 .*field\(s\) 'text_inptu' \(did you mean 'text_input'\?\) name no input of model 'streamer' \(inputs: text_input\)/],
    ['a number for a BYTES input', 'streamer', { text_input: 5 }, 400,
      /^Unable to parse 'text_input': element 0 of input 'text_input' is 5, expected a string$/],
    ['a string for an INT32 input', 'shout', { text_input: 'a', repeat: 'two' }, 400,
      /^Unable to parse 'repeat': element 0 of input 'repeat' is "two", expected an integer in INT32 range/],
    ['an object for an input', 'streamer', { text_input: { a: 1 } }, 400, /^Unable to parse 'text_input': input 'text_input' is BYTES: give a value/],
    ['more values than the input holds', 'streamer', { text_input: ['a', 'b'] }, 400,
      /^Unable to parse 'text_input': input 'text_input' has shape \[1\], which cannot hold the 2 element\(s\) given$/],
    ['parameters that are not an object', 'streamer', { text_input: 'a', parameters: 1 }, 400, /^Expected JSON object for keyword: 'parameters'$/],
    ['a nested parameter', 'streamer', { text_input: 'a', parameters: { nested: { twice: 1 } } }, 400,
      /^Converting keyword: 'parameters': parameter 'nested' has invalid type/],
    ['an object in a top-level field that names no input', 'streamer', { text_input: 'a', PARAMS: { x: 0 } }, 400, /^parameter 'PARAMS' has invalid type/],
    ['a body that is not JSON', 'streamer', '{"text_input": ', 400, /^failed to parse the request JSON buffer: /],
    ['a body that is not an object', 'streamer', '["a"]', 400, /must be a JSON object/],
    ['an unknown model', 'missing', { text_input: 'a' }, 404, /^Request for unknown model: 'missing' is not found$/],
  ];
  for (const route of ['generate', 'generate_stream']) {
    for (const [what, model, body, status, error] of cases) {
      test(`${route}: ${what} is a JSON ${status}`, async () => {
        const response = await post(`/v2/models/${model}/${route}`, body);
        assert.equal(response.status, status);
        assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
        const json = await response.json() as { error: string };
        assert.match(json.error, error);
      });
    }
  }
});

describe('a compressed generate body', () => {
  for (const route of ['generate', 'generate_stream']) {
    test(`${route}: Content-Encoding gzip, deflate or unknown is refused with Triton's 400; identity and empty are read as sent`, async () => {
      const body = JSON.stringify({ text_input: 'tok', parameters: { tokens: 1 } });
      for (const [encoding, sent] of [['gzip', gzipSync(body)], ['deflate', deflateSync(body)], ['br', Buffer.from(body)]] as const) {
        const response = await post(`/v2/models/streamer/${route}`, sent, { headers: { 'content-encoding': encoding } });
        assert.equal(response.status, 400, encoding);
        assert.deepEqual(await response.json(), { error: "Unsupported content-encoding, only 'identity' is supported." });
      }
      for (const encoding of ['identity', '']) {
        const response = await post(`/v2/models/streamer/${route}`, body, { headers: { 'content-encoding': encoding } });
        assert.equal(response.status, 200, `'${encoding}'`);
        assert.match(await response.text(), /tok 0/);
      }
    });
  }

  test('an unknown model is named first, as Triton looks the model up before the encoding', async () => {
    const response = await post('/v2/models/missing/generate', gzipSync('{}'), { headers: { 'content-encoding': 'gzip' } });
    assert.equal(response.status, 404);
  });
});

describe('unary infer on a decoupled model', () => {
  test('is refused with 501, pointing at generate_stream and ModelStreamInfer', async () => {
    const response = await post('/v2/models/streamer/infer', { inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: ['x'] }] });
    assert.equal(response.status, 501);
    const { error } = await response.json() as { error: string };
    assert.match(error, /doesn't support models with decoupled transaction policy: model 'streamer'/);
    assert.match(error, /ModelStreamInfer.*\/v2\/models\/streamer\/generate_stream/);
  });
});

describe('a client that disconnects mid-stream', () => {
  test('stops the generation: the script sees its sends refused within a few tokens', async () => {
    const client = new AbortController();
    const response = await post('/v2/models/streamer/generate_stream',
      { text_input: 'long', parameters: { tokens: 100_000, tick: true, id: 'http-gone' } }, { signal: client.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while ((text.match(/\n\n/g) ?? []).length < 5) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream went on');
      text += decoder.decode(value, { stream: true });
    }
    const received = (text.match(/\n\n/g) ?? []).length;
    client.abort();
    const line = await waitForLogLine(logger, 'stopped http-gone', 10_000);
    // The script stops at a refused send or at its tick call failing CANCELLED; either way it was told first.
    const sends = Number(/after (\d+) sends, isCancelled true/.exec(line)?.[1]);
    // Tokens already on their way when the socket closed may be counted, more of them on a loaded machine;
    // a generation that ran on would send all 100,000.
    assert.ok(sends - received < 2000, `${sends - received} token(s) sent after the disconnect (${line})`);
    // The model is free again.
    const after = await stream('streamer', { text_input: 'again', parameters: { tokens: 1 } });
    assert.deepEqual(after.events, [token(0, 'again')]);
  });
});

