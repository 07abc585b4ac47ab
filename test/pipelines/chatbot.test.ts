/**
 * The bundled chatbot (pipelines/chatbot, chat_tokenizer, chatbot_lm), as a
 * client meets it: turns of a conversation streamed over HTTP
 * generate_stream and gRPC ModelStreamInfer, the conversation's context
 * carried between turns in chatbot_lm's sequence state, deterministic
 * replies, conversations at once that do not mix, and clear errors.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CHAT_VOCABULARY, encodeChat } from '../../generator/char-language-model.ts';
import type { FixedTensor } from '../../engine/tensor.ts';
import { CHATBOT_CORPUS, PIPELINES_DIR } from '../../pipelines/generate.ts';
import { startBoth, startHttp, type DualFixture } from '../helpers/fixture-repository.ts';
import { chat, grpcChunks, streamOverGrpc, type Parameters, type Reply } from '../helpers/generate-stream.ts';
import { RawGrpcClient } from '../helpers/grpc-raw-client.ts';
import { within } from '../helpers/script-fixtures.ts';
import { bytesTensor } from '../../engine/bytes-tensor.ts';

/** A conversation's turns, one after another. */
async function conversation(url: string, turns: readonly string[], parameters: Parameters): Promise<Reply[]> {
  const replies: Reply[] = [];
  for (const text of turns) replies.push(await chat(url, text, parameters));
  return replies;
}

/** A reply as the model makes it: words of the vocabulary's characters, streamed a word at a time. */
function assertWellFormed(reply: Reply, maxTokens = 120): void {
  assert.equal(reply.status, 200, reply.error);
  assert.equal(reply.error, undefined);
  assert.ok(reply.chunks.length >= 2, `streamed in several events: ${JSON.stringify(reply.chunks)}`);
  assert.match(reply.chunks[0]!, /^[^ ]+$/, 'the first word has no leading space');
  for (const chunk of reply.chunks.slice(1)) assert.match(chunk, /^ [^ ]+$/, 'every later event is one word after a space');
  assert.ok([...reply.text].every((c) => CHAT_VOCABULARY.includes(c)), `only vocabulary characters: ${reply.text}`);
  assert.ok(reply.text.length <= maxTokens, `at most max_tokens (${maxTokens}) characters, got ${reply.text.length}`);
  assert.ok(/[.?!]$/.test(reply.text) || reply.text.length === maxTokens, `ends at a sentence end or at max_tokens: ${reply.text}`);
}

describe('the chatbot pipeline', () => {
  let fixture: DualFixture;
  let grpc: RawGrpcClient;
  before(async () => {
    fixture = await startBoth(PIPELINES_DIR);
    grpc = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    grpc?.close();
    await fixture?.close();
  });

  test('loads from the bundled repository: a decoupled script in front of a stateful ONNX model', () => {
    assert.deepEqual(fixture.engine.loadFailures(), []);
    const chatbot = fixture.engine.modelConfig('chatbot');
    assert.equal(chatbot.backend, 'typescript');
    assert.deepEqual(chatbot['model_transaction_policy'], { decoupled: true });
    const lm = fixture.engine.modelConfig('chatbot_lm') as unknown as { sequence_batching: { state: { input_name: string }[] } };
    assert.deepEqual(lm.sequence_batching.state.map((s) => s.input_name), ['PREV_IN', 'CONTEXT_IN']);
    assert.deepEqual(fixture.engine.modelMetadata('chatbot_lm').inputs.map((i) => i.name), ['TOKEN'], 'the state inputs are the server\'s, not the client\'s');
  });

  test('chat_tokenizer encodes as encodeChat does, with the same vocabulary', async () => {
    for (const text of ['Tell me about the YARD!', '  many   spaces\tand\nlines  ', "it's 9 o'clock, right?", 'Ünïcödé 🚀 text', 'x']) {
      const result = await fixture.engine.infer({
        modelName: 'chat_tokenizer',
        inputs: [bytesTensor('TEXT', [1], [text])],
      });
      const tokens = result.outputs[0] as FixedTensor;
      assert.equal(tokens.datatype, 'INT64');
      const ids = [...new BigInt64Array(tokens.raw.buffer, tokens.raw.byteOffset, tokens.raw.byteLength / 8)].map(Number);
      assert.deepEqual(ids, encodeChat(text), text);
      assert.deepEqual(tokens.shape, [ids.length]);
    }
    for (const model of ['chat_tokenizer', 'chatbot']) {
      const source = await readFile(join(PIPELINES_DIR, model, '1', 'model.ts'), 'utf8');
      assert.ok(source.includes(`const VOCABULARY = ${JSON.stringify(CHAT_VOCABULARY)};`), `${model} copies CHAT_VOCABULARY`);
    }
  });

  test('a conversation streams each reply a word at a time, and its second turn continues the first', async () => {
    const [first, second] = await conversation(fixture.httpUrl, ['tell me about the yard', 'and what happens at night?'], { sequence_id: 42 });
    assertWellFormed(first!);
    assertWellFormed(second!);
    assert.notEqual(second!.text, first!.text);

    // The same second prompt as the first turn of a new conversation (same seed) is answered differently.
    const fresh = await chat(fixture.httpUrl, 'and what happens at night?', { sequence_id: 43, seed: 42 });
    assertWellFormed(fresh);
    assert.notEqual(fresh.text, second!.text);
    // ...as is the same second turn after a different first turn: same seed and turn number, so only chatbot_lm's state differs.
    const other = await conversation(fixture.httpUrl, ['what is a model server?', 'and what happens at night?'], { sequence_id: 44, seed: 42 });
    assert.notEqual(other[1]!.text, second!.text);

    // new_conversation starts conversation 42 over: its first reply again.
    const restarted = await chat(fixture.httpUrl, 'tell me about the yard', { sequence_id: 42, new_conversation: true });
    assert.deepEqual(restarted.chunks, first!.chunks);
  });

  test('the replies are made from the text the model was counted from', async () => {
    const corpus = new Set((await readFile(CHATBOT_CORPUS, 'utf8')).toLowerCase().match(/[a-z']+/g));
    const replies = await conversation(fixture.httpUrl, ['tell me about the hump', 'what does the crew check?', 'and the trains?'], { sequence_id: 'corpus' });
    const words = replies.flatMap((r) => r.text.match(/[a-z']+/g) ?? []);
    const known = words.filter((w) => corpus.has(w));
    assert.ok(known.length / words.length > 0.5, `most words are the text's own: ${known.length} of ${words.length} (${words.join(' ')})`);
  });

  test('the same conversation gets the same replies on a new server', async () => {
    const turns = ['hello yard', 'what is the hump?', 'go on'];
    const here = await conversation(fixture.httpUrl, turns, { sequence_id: 'replayed' });
    const another = await startHttp(PIPELINES_DIR);
    try {
      const there = await conversation(another.url, turns, { sequence_id: 'replayed' });
      assert.deepEqual(there.map((r) => r.chunks), here.map((r) => r.chunks));
    } finally {
      await another.close();
    }
    here.forEach((reply) => assertWellFormed(reply));
  });

  test('conversations at once do not mix: each gets the replies it gets alone, though they share batches', async () => {
    const conversations = [
      { seed: 'a', turns: ['tell me about the night shift', 'and the radio?'] },
      { seed: 'b', turns: ['what is a switchyard?', 'who works there?'] },
      { seed: 'c', turns: ['hello', 'what about the hump?'] },
    ];
    const alone: Reply[][] = [];
    for (const { seed, turns } of conversations) alone.push(await conversation(fixture.httpUrl, turns, { sequence_id: `alone-${seed}`, seed }));
    assert.equal(new Set(alone.map((replies) => replies[0]!.text)).size, conversations.length);

    const batches = (model: string): number => fixture.engine.modelStatistics(model).model_stats[0]!.batch_stats
      .filter((b) => b.batch_size > 1).reduce((sum, b) => sum + b.compute_infer.count, 0);
    const before = { chatbot: batches('chatbot'), lm: batches('chatbot_lm') };
    for (let turn = 0; turn < 2; turn++) {
      const replies = await Promise.all(conversations.map(({ seed, turns }) => chat(fixture.httpUrl, turns[turn]!, { sequence_id: `together-${seed}`, seed })));
      replies.forEach((reply, i) => assert.deepEqual(reply.chunks, alone[i]![turn]!.chunks, `conversation ${conversations[i]!.seed}, turn ${turn + 1}`));
    }
    // The turns reached the chatbot together, so one execute() answered them side by side, and their characters met in chatbot_lm's batches.
    assert.ok(batches('chatbot') - before.chatbot >= 1, 'the chatbot answered turns of several conversations in one execute()');
    const shared = batches('chatbot_lm') - before.lm;
    assert.ok(shared > 10, `chatbot_lm ran characters of several conversations in one batch (${shared} times)`);
  });

  test('gRPC ModelStreamInfer streams the same reply, and continues a conversation begun over HTTP', async () => {
    const overHttp = await conversation(fixture.httpUrl, ['hello', 'tell me about the tracks'], { sequence_id: 601, seed: 'g' });
    const [first] = await conversation(fixture.httpUrl, ['hello'], { sequence_id: 602, seed: 'g' });
    assert.deepEqual(first!.chunks, overHttp[0]!.chunks);

    const received = await streamOverGrpc(grpc, {
      model_name: 'chatbot', id: 'turn-2',
      inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('tell me about the tracks')] } }],
      parameters: { sequence_id: { uint64_param: 602 }, seed: { string_param: 'g' } },
    });

    assert.ok(received.every((m) => !m['error_message']), JSON.stringify(received.find((m) => m['error_message'])));
    const chunks = grpcChunks(received);
    assert.deepEqual(chunks, overHttp[1]!.chunks);
    const finals = received.map((m) => m['infer_response']['parameters']['triton_final_response']['bool_param'] === true);
    assert.deepEqual(finals, chunks.map((_, i) => i === chunks.length - 1), 'the last word is flagged final');
    assert.equal(received[0]!['infer_response']['id'], 'turn-2');
  });

  test('a turn without sequence_id is refused, saying what to send; so are bad parameters', async () => {
    const missing = await chat(fixture.httpUrl, 'hello', {});
    assert.equal(missing.status, 500);
    assert.deepEqual(missing.chunks, []);
    assert.match(missing.error ?? '', /the chatbot needs a conversation id: set the request parameter sequence_id .* every turn of the conversation/);

    const received = await streamOverGrpc(grpc,
      { model_name: 'chatbot', id: 'no-id', inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('hello')] } }] });
    assert.equal(received.length, 1);
    assert.match(received[0]!['error_message'], /needs a conversation id: set the request parameter sequence_id/);

    const bad: [string, Parameters, RegExp][] = [
      ['hello', { sequence_id: 7, max_tokens: 0 }, /max_tokens is 0; use a whole number of characters from 1 to 1000/],
      ['hello', { sequence_id: 7, temperature: 'hot' }, /temperature is hot; use a number from 0/],
      ['hello', { sequence_id: 7, new_conversation: 'yes' }, /new_conversation is yes; use true or false/],
      ['hello', { sequence_id: -3 }, /sequence_id is -3; use an unsigned integer or a string/],
      ['   ', { sequence_id: 7 }, /text_input is empty/],
    ];
    for (const [text, parameters, message] of bad) {
      const reply = await chat(fixture.httpUrl, text, parameters);
      assert.equal(reply.status, 500, JSON.stringify(parameters));
      assert.match(reply.error ?? '', message);
    }
  });

  test('max_tokens bounds a reply; temperature 0 takes the likeliest character whatever the seed', async () => {
    const short = await chat(fixture.httpUrl, 'tell me about the yard', { sequence_id: 'short', max_tokens: 12 });
    assert.equal(short.text.length, 12);
    const greedy = await Promise.all([1, 2].map((seed) => chat(fixture.httpUrl, 'tell me about the yard', { sequence_id: `greedy-${seed}`, seed, temperature: 0 })));
    assert.deepEqual(greedy[0]!.chunks, greedy[1]!.chunks);
    const sampled = await Promise.all([1, 2].map((seed) => chat(fixture.httpUrl, 'tell me about the yard', { sequence_id: `sampled-${seed}`, seed })));
    assert.notEqual(sampled[0]!.text, sampled[1]!.text);
  });

  test('end_conversation ends the sequence after the reply: the next turn starts a new conversation', async () => {
    await chat(fixture.httpUrl, 'tell me about the yard', { sequence_id: 'ended', seed: 'e', end_conversation: true });
    const after = await chat(fixture.httpUrl, 'go on', { sequence_id: 'ended', seed: 'e' });
    const fresh = await chat(fixture.httpUrl, 'go on', { sequence_id: 'fresh', seed: 'e' });
    assertWellFormed(after);
    assert.deepEqual(after.chunks, fresh.chunks);
  });

  test('a client that goes away stops the generation', async () => {
    const steps = (): number => fixture.engine.modelStatistics('chatbot_lm').model_stats[0]!.inference_stats.success.count;
    const before = steps();
    // At temperature 0 this turn's reply runs on to max_tokens (1000 characters, most of a second): it is still going when cancelled.
    const controller = new AbortController();
    const response = await fetch(`${fixture.httpUrl}/v2/models/chatbot/generate_stream`, {
      method: 'POST', body: JSON.stringify({ text_input: 'tell me everything', parameters: { sequence_id: 'gone', max_tokens: 1000, temperature: 0 } }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    // The chatbot's next turn runs only once the cancelled one has stopped (one instance).
    await chat(fixture.httpUrl, 'hello', { sequence_id: 'after-gone', max_tokens: 1 });
    const ran = steps() - before;
    assert.ok(ran < 500, `the cancelled reply stopped early: ${ran} calls to chatbot_lm, not the 1000 it asked for`);
  });
});
