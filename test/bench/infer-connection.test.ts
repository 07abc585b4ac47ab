/** The ensemble benchmark's HTTP client: reading a response that may arrive in pieces, and the request it builds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseResponse, requestHead } from '../../bench/ensemble/infer-connection.ts';

const json = '{"model_name":"m","outputs":[{"name":"OUT","datatype":"FP32","shape":[1,1],"parameters":{"binary_data_size":4}}]}';
const binary = Buffer.from(new Float32Array([1.5]).buffer);
const response = Buffer.concat([
  Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nInference-Header-Content-Length: ${json.length}\r\n`
    + `content-length: ${json.length + binary.byteLength}\r\n\r\n${json}`, 'latin1'),
  binary,
]);

test('a complete response gives its status, body and where the binary outputs start', () => {
  const parsed = parseResponse(response);
  assert.ok(parsed);
  assert.equal(parsed.byteLength, response.byteLength);
  assert.equal(parsed.answer.status, 200);
  assert.equal(parsed.answer.jsonLength, json.length);
  assert.deepEqual(parsed.answer.body.subarray(json.length), binary);
});

test('a response cut anywhere reads as incomplete', () => {
  for (const cut of [0, 10, response.indexOf('\r\n\r\n') + 2, response.byteLength - 1]) {
    assert.equal(parseResponse(response.subarray(0, cut)), undefined, `cut at ${cut}`);
  }
});

test('an answer without the binary header has no jsonLength; one without content-length is refused', () => {
  const plain = Buffer.from('HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}', 'latin1');
  assert.equal(parseResponse(plain)?.answer.jsonLength, undefined);
  assert.equal(parseResponse(plain)?.answer.status, 400);
  assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', 'latin1')), /content-length/);
});

test('the request head declares the tensor that follows it', () => {
  const head = requestHead({ port: 8000, model: 'm', input: 'IN', output: 'OUT', shape: [1, 4], tensorBytes: 16 }).toString('latin1');
  const [http, body] = head.split('\r\n\r\n') as [string, string];
  assert.match(http, /^POST \/v2\/models\/m\/infer HTTP\/1\.1\r\n/);
  assert.match(http, new RegExp(`\r\ninference-header-content-length: ${body.length}\r\n`));
  assert.match(http, new RegExp(`\r\ncontent-length: ${body.length + 16}$`));
  assert.deepEqual(JSON.parse(body), {
    inputs: [{ name: 'IN', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }],
    outputs: [{ name: 'OUT', parameters: { binary_data: true } }],
  });
});
