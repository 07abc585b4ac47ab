/**
 * Turns of a streaming model as a client meets them: over HTTP
 * generate_stream (server-sent events, each `data: <json>`) and over gRPC
 * ModelStreamInfer (one request, its responses until the stream ends).
 */
import assert from 'node:assert/strict';
import type { ParameterValue } from '../../engine/inference-request.ts';
import { strings, type Message, type RawGrpcClient } from './grpc-raw-client.ts';
import { within } from './script-fixtures.ts';

export type Parameters = Record<string, ParameterValue>;

export interface Reply {
  readonly status: number;
  /** Each event's text_output, in order. */
  readonly chunks: readonly string[];
  /** The chunks joined: the whole reply. */
  readonly text: string;
  /** The error of an error event, if there was one. */
  readonly error: string | undefined;
}

/** The data of each event of an SSE body, parsed; every event must be exactly `data: <json>\n\n`. */
export function events(body: string): Record<string, unknown>[] {
  if (body === '') return [];
  assert.ok(body.endsWith('\n\n'), `the body ends with a blank line: ${JSON.stringify(body)}`);
  return body.slice(0, -2).split('\n\n').map((chunk) => {
    assert.ok(chunk.startsWith('data: ') && !chunk.includes('\n'), `one data line per event: ${JSON.stringify(chunk)}`);
    return JSON.parse(chunk.slice('data: '.length)) as Record<string, unknown>;
  });
}

/** One turn over POST /v2/models/<model>/generate_stream, as the README's curl sends it. */
export async function chat(url: string, text: string, parameters: Parameters, init: RequestInit = {}, model = 'chatbot'): Promise<Reply> {
  const response = await fetch(`${url}/v2/models/${model}/generate_stream`, {
    method: 'POST', body: JSON.stringify({ text_input: text, parameters }), ...init,
  });
  const received = events(await response.text());
  const error = received.find((e) => 'error' in e)?.['error'] as string | undefined;
  const chunks = received.filter((e) => !('error' in e)).map((e) => {
    assert.equal(e['model_name'], model);
    assert.equal(typeof e['text_output'], 'string');
    return e['text_output'] as string;
  });
  return { status: response.status, chunks, text: chunks.join(''), error };
}

/** Every message gRPC ModelStreamInfer answers `request` with, until the server ends the stream. */
export async function streamOverGrpc(grpc: RawGrpcClient, request: Message, ms = 15_000): Promise<Message[]> {
  const received: Message[] = [];
  const stream = grpc.stream();
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (m: Message) => received.push(m));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  stream.write(request);
  stream.end();
  await within(ms, 'the gRPC stream', done);
  return received;
}

/** The text_output of each gRPC stream response, in order. */
export const grpcChunks = (received: readonly Message[]): string[] =>
  received.map((m) => strings(m['infer_response']['raw_output_contents'][0]).join(''));
