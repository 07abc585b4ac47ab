/**
 * The bundled chatbot_filter (pipelines/chatbot_filter): a decoupled script
 * that reads chatbot's reply with ctx.inferStream and rewrites each word as
 * it streams. Over HTTP generate_stream and gRPC ModelStreamInfer: the same
 * words as chatbot's own reply to the same turn, capitalised and masked;
 * chatbot's errors passed on naming it; a bad mask refused; and a client
 * that goes away stops chatbot through the filter.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import { startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { chat, grpcChunks, streamOverGrpc, type Reply } from '../helpers/generate-stream.ts';
import { RawGrpcClient } from '../helpers/grpc-raw-client.ts';
import { pollFor } from '../helpers/wait.ts';

/** What the filter should make of chatbot's words: capitals after sentence ends, masked words. */
function filtered(chunks: readonly string[], mask: readonly string[]): string[] {
  let sentenceStart = true;
  return chunks.map((chunk) => {
    const out = chunk.replace(/[a-z']+/, (word) => {
      const shown = mask.includes(word) ? word[0] + '*'.repeat(word.length - 1) : word;
      return sentenceStart ? shown[0]!.toUpperCase() + shown.slice(1) : shown;
    });
    sentenceStart = /[.?!]$/.test(chunk);
    return out;
  });
}

const PROMPT = 'tell me about the yard at night';

describe('the chatbot_filter pipeline', () => {
  let fixture: DualFixture;
  let grpc: RawGrpcClient;
  /** chatbot's own reply to PROMPT, first turn, seed 'f'. */
  let original: Reply;
  before(async () => {
    fixture = await startBoth(PIPELINES_DIR);
    grpc = new RawGrpcClient(fixture.grpcAddress);
    original = await chat(fixture.httpUrl, PROMPT, { sequence_id: 'filter-original', seed: 'f' });
    assert.equal(original.error, undefined);
    assert.ok(original.chunks.length >= 4, JSON.stringify(original.chunks));
  });
  after(async () => {
    grpc?.close();
    await fixture?.close();
  });

  test('HTTP generate_stream: chatbot\'s reply word for word, capitalised, with the masked words hidden', async () => {
    // Mask a word the reply is known to hold, so the masking shows.
    const word = /[a-z']{3,}/.exec(original.chunks[2]!)![0];
    const reply = await chat(fixture.httpUrl, PROMPT, { sequence_id: 'filter-http', seed: 'f', mask: `${word},zebra` }, {}, 'chatbot_filter');
    assert.equal(reply.status, 200, reply.error);
    assert.deepEqual(reply.chunks, filtered(original.chunks, [word, 'zebra']));
    assert.ok(reply.chunks.some((c) => c.includes('*')), JSON.stringify(reply.chunks));
    assert.match(reply.chunks[0]!, /^[A-Z]/);
    // One event per word, as chatbot streamed them.
    assert.equal(reply.chunks.length, original.chunks.length);
  });

  test('the config\'s masked_words apply when the request names none', async () => {
    const reply = await chat(fixture.httpUrl, PROMPT, { sequence_id: 'filter-default', seed: 'f' }, {}, 'chatbot_filter');
    assert.deepEqual(reply.chunks, filtered(original.chunks, ['night', 'dark']));
  });

  test('gRPC ModelStreamInfer: the same words, each response flagged final only at the end', async () => {
    const received = await streamOverGrpc(grpc, {
      model_name: 'chatbot_filter', id: 'filtered',
      inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from(PROMPT)] } }],
      parameters: { sequence_id: { string_param: 'filter-grpc' }, seed: { string_param: 'f' }, mask: { string_param: 'the' } },
    });
    assert.ok(received.every((m) => !m['error_message']), JSON.stringify(received.find((m) => m['error_message'])));
    const chunks = grpcChunks(received);
    assert.deepEqual(chunks, filtered(original.chunks, ['the']));
    const finals = received.map((m) => m['infer_response']['parameters']?.['triton_final_response']?.['bool_param'] === true);
    assert.equal(finals.at(-1), true);
    assert.ok(finals.slice(0, -1).every((f) => !f));
  });

  test('chatbot\'s refusal comes back naming both models; a bad mask is refused by the filter', async () => {
    const missing = await chat(fixture.httpUrl, 'hello', {}, {}, 'chatbot_filter');
    assert.equal(missing.status, 500);
    assert.match(missing.error ?? '', /^inference failed in model 'chatbot_filter': inference failed in model 'chatbot': the chatbot needs a conversation id/);
    const badMask = await chat(fixture.httpUrl, 'hello', { sequence_id: 'm', mask: 7 }, {}, 'chatbot_filter');
    assert.match(badMask.error ?? '', /mask is 7; use a comma-separated list of words/);
    const tooMany = await chat(fixture.httpUrl, 'hello', { sequence_id: 'm', mask: Array.from({ length: 101 }, (_, i) => `w${i}`).join() }, {}, 'chatbot_filter');
    assert.match(tooMany.error ?? '', /mask lists 101 words; at most 100/);
  });

  test('a client that goes away stops chatbot too: the filter\'s broken loop cancels the stream it reads', async () => {
    const cancelled = (model: string): number => Object.values(fixture.engine.modelStatistics(model).model_stats[0]!.response_stats)
      .reduce((sum, s) => sum + s.cancel.count, 0);
    const before = { filter: cancelled('chatbot_filter'), chatbot: cancelled('chatbot') };
    // At temperature 0 this turn's reply runs on to max_tokens (1000 characters, most of a second): it is still going when cancelled.
    const controller = new AbortController();
    const response = await fetch(`${fixture.httpUrl}/v2/models/chatbot_filter/generate_stream`, {
      method: 'POST', body: JSON.stringify({ text_input: 'tell me everything', parameters: { sequence_id: 'filter-gone', max_tokens: 1000, temperature: 0 } }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    // The client's stream of chatbot_filter is cancelled, and so is the stream chatbot_filter read from chatbot.
    await pollFor('both streams counted as cancelled', 10_000,
      () => cancelled('chatbot_filter') > before.filter && cancelled('chatbot') > before.chatbot,
      () => JSON.stringify({ before, filter: cancelled('chatbot_filter'), chatbot: cancelled('chatbot') }));
  });
});
