/**
 * The trace extension's opentelemetry mode against a real OTLP/HTTP
 * receiver on a loopback port, which decodes the protobuf the exporter
 * sends (the OTLP trace messages, by their field numbers). One ensemble
 * request over HTTP carrying a client's `traceparent`, one over gRPC
 * without: the span tree (InferRequest > ensemble > each step > compute),
 * Triton's attributes, the batch size, the events, and the client's trace
 * id and parent span kept.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import protobuf from 'protobufjs';
import { InferenceClient, tensor } from '../../client/index.ts';
import { addSubModel } from '../../generator/models.ts';
import { chainEnsemble, range16 } from '../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { pollFor } from '../helpers/wait.ts';
import { OTEL_SHUTDOWN_WAIT_MS } from '../../engine/observability/trace/tracer.ts';

/** The parts of OTLP's trace export request the test reads (opentelemetry-proto, field numbers as published). */
const OTLP_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message InstrumentationScope { string name = 1; string version = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; repeated Event events = 11; Status status = 15;
}
message Event { fixed64 time_unix_nano = 1; string name = 2; }
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
`;
const ExportRequest = protobuf.parse(OTLP_PROTO).root.lookupType('otlp.ExportTraceServiceRequest');

interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly start: bigint;
  readonly end: bigint;
  readonly attributes: Record<string, unknown>;
  readonly events: string[];
  readonly resource: Record<string, unknown>;
}

const hex = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString('hex');
const valueOf = (v: Record<string, unknown> | undefined): unknown =>
  v === undefined ? undefined : v['stringValue'] ?? v['boolValue'] ?? (v['intValue'] !== undefined ? Number(v['intValue']) : v['doubleValue']);
const attributesOf = (list: unknown): Record<string, unknown> =>
  Object.fromEntries(((list as { key: string; value: Record<string, unknown> }[] | undefined) ?? []).map((kv) => [kv.key, valueOf(kv.value)]));

/** A loopback OTLP/HTTP receiver: every span of every export it was sent. */
async function otlpReceiver(): Promise<{ server: Server; port: number; spans: ReceivedSpan[]; paths: string[] }> {
  const spans: ReceivedSpan[] = [];
  const paths: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const message = ExportRequest.toObject(ExportRequest.decode(Buffer.concat(chunks)), { longs: String, bytes: Array }) as Record<string, unknown>;
      for (const rs of (message['resourceSpans'] as Record<string, unknown>[] | undefined) ?? []) {
        const resource = attributesOf((rs['resource'] as Record<string, unknown> | undefined)?.['attributes']);
        for (const ss of (rs['scopeSpans'] as Record<string, unknown>[] | undefined) ?? []) {
          for (const span of (ss['spans'] as Record<string, unknown>[] | undefined) ?? []) {
            spans.push({
              traceId: hex(Uint8Array.from(span['traceId'] as number[])), spanId: hex(Uint8Array.from(span['spanId'] as number[])),
              parentSpanId: hex(Uint8Array.from((span['parentSpanId'] as number[] | undefined) ?? [])), name: span['name'] as string,
              start: BigInt(span['startTimeUnixNano'] as string), end: BigInt(span['endTimeUnixNano'] as string),
              attributes: attributesOf(span['attributes']), events: ((span['events'] as { name: string }[] | undefined) ?? []).map((e) => e.name),
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, spans, paths };
}

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c12666c';
const CLIENT_SPAN = 'b7ad6b7169242424';

describe('opentelemetry trace mode', () => {
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let root: string;
  let fixture: DualFixture | undefined;

  before(async () => {
    receiver = await otlpReceiver();
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
    });
    fixture = await startBoth(root, {
      trace: {
        mode: 'opentelemetry', values: { level: ['TIMESTAMPS'], rate: 1, count: -1, logFrequency: 0, file: '' },
        modeSettings: [
          ['url', `127.0.0.1:${receiver.port}/v1/traces`], ['resource', 'service.name=switchyard-test'],
          ['bsp_max_export_batch_size', '512'], ['bsp_schedule_delay', '50'], ['bsp_max_queue_size', '2048'],
        ],
      },
    });
    const inputs = () => [tensor('A', 'INT32', [1, 16], range16((i) => i)), tensor('B', 'INT32', [1, 16], range16(() => 1))];
    // The HTTP request carries the client's trace context; the gRPC one does not, and is sampled by the rate.
    const response = await fetch(`${fixture.httpUrl}/v2/models/chain/infer`, {
      method: 'POST',
      headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'otel-http', parameters: { sequence_id: 7 }, inputs: inputs().map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: [...t.data as Iterable<number>] })) }),
    });
    assert.equal(response.status, 200, await response.text());
    const grpc = new InferenceClient({ url: fixture.grpcAddress, protocol: 'grpc' });
    try {
      await grpc.infer('chain', inputs(), { id: 'otel-grpc' });
    } finally {
      grpc.close();
    }
    // Closing the server flushes what the batch span processor still holds.
    await fixture.close();
    fixture = undefined;
    await pollFor('6 spans of each request at the receiver', 5000, () => receiver.spans.length >= 12, () => JSON.stringify(receiver.spans.map((s) => s.name)));
  });
  after(async () => {
    await fixture?.close();
    receiver?.server.close();
    await removeRepository(root);
  });

  const tree = (requestId: string): { root: ReceivedSpan; ensemble: ReceivedSpan; steps: ReceivedSpan[]; computes: ReceivedSpan[] } => {
    const ensemble = receiver.spans.find((s) => s.name === 'chain' && s.attributes['triton.request_id'] === requestId)!;
    const root = receiver.spans.find((s) => s.spanId === ensemble.parentSpanId)!;
    const steps = receiver.spans.filter((s) => s.parentSpanId === ensemble.spanId);
    const computes = receiver.spans.filter((s) => steps.some((step) => step.spanId === s.parentSpanId));
    return { root, ensemble, steps, computes };
  };

  test('OTLP/HTTP protobuf to the configured url, with the resource given', () => {
    assert.ok(receiver.paths.every((p) => p === 'POST /v1/traces application/x-protobuf'), receiver.paths.join('\n'));
    assert.ok(receiver.spans.every((s) => s.resource['service.name'] === 'switchyard-test'));
  });

  test('InferRequest > ensemble > two steps > compute each, with Triton\'s attributes and the batch size', () => {
    for (const requestId of ['otel-http', 'otel-grpc']) {
      const { root, ensemble, steps, computes } = tree(requestId);
      assert.equal(root.name, 'InferRequest');
      assert.equal(ensemble.attributes['triton.model_name'], 'chain');
      assert.equal(ensemble.attributes['triton.model_version'], 1);
      assert.equal(ensemble.attributes['triton.trace_parent_id'], 0);
      assert.deepEqual(ensemble.events, ['REQUEST_START', 'QUEUE_START', 'REQUEST_END']);
      assert.deepEqual(steps.map((s) => s.name), ['add_sub', 'add_sub']);
      for (const step of steps) {
        assert.equal(step.attributes['triton.trace_parent_id'], ensemble.attributes['triton.trace_id']);
        assert.equal(step.attributes['switchyard.batch_size'], 1);
        assert.match(String(step.attributes['switchyard.step']), /^step [12] \('add_sub'\)$/);
        assert.ok(step.start >= ensemble.start && step.end <= ensemble.end, 'a step within its ensemble');
      }
      assert.equal(computes.length, 2);
      for (const compute of computes) {
        assert.equal(compute.name, 'compute');
        assert.deepEqual(compute.events, ['COMPUTE_START', 'COMPUTE_INPUT_END', 'COMPUTE_OUTPUT_START', 'COMPUTE_END']);
      }
      assert.ok(new Set([root, ensemble, ...steps, ...computes].map((s) => s.traceId)).size === 1, 'one trace id for the whole tree');
    }
  });

  test('a client\'s traceparent: its trace id is kept and its span is InferRequest\'s parent; without one, a new trace', () => {
    const http = tree('otel-http');
    assert.equal(http.root.traceId, CLIENT_TRACE);
    assert.equal(http.root.parentSpanId, CLIENT_SPAN);
    assert.deepEqual(http.root.events, ['HTTP_RECV_START', 'HTTP_RECV_END', 'HTTP_SEND_START', 'HTTP_SEND_END']);
    assert.equal(http.ensemble.attributes['switchyard.sequence_id'], '7');
    const grpc = tree('otel-grpc');
    assert.notEqual(grpc.root.traceId, CLIENT_TRACE);
    assert.equal(grpc.root.parentSpanId, '');
    assert.deepEqual(grpc.root.events, ['GRPC_WAITREAD_START', 'GRPC_WAITREAD_END', 'GRPC_SEND_START', 'GRPC_SEND_END']);
  });
});

test('a collector that refuses connections delays shutdown by at most OTEL_SHUTDOWN_WAIT_MS, and requests are answered meanwhile', async () => {
  const dir = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
  const fixture = await startBoth(dir, {
    trace: {
      mode: 'opentelemetry', values: { level: ['TIMESTAMPS'], rate: 1, count: -1, logFrequency: 0, file: '' },
      modeSettings: [['url', '127.0.0.1:1/v1/traces'], ['bsp_max_export_batch_size', '512'], ['bsp_schedule_delay', '50'], ['bsp_max_queue_size', '2048']],
    },
  });
  try {
    const http = new InferenceClient({ url: fixture.httpUrl });
    for (let i = 0; i < 5; i++) {
      await http.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], range16((j) => j)), tensor('INPUT1', 'INT32', [1, 16], range16(() => 1))]);
    }
  } finally {
    const started = performance.now();
    await fixture.close();
    const took = performance.now() - started;
    await removeRepository(dir);
    assert.ok(took < OTEL_SHUTDOWN_WAIT_MS + 1500, `shutdown took ${took.toFixed(0)} ms`);
  }
});
