/**
 * The KServe runtime as KServe selects and runs it: ONNX models picked
 * automatically, the Open Inference Protocol over HTTP and gRPC, and an
 * InferenceService that KServe would place on it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manifestOf } from './deploy-files.ts';

interface Format { name: string; version?: string; autoSelect?: boolean }
const runtime = manifestOf('ServingRuntime').object as {
  metadata: { name: string };
  spec: { supportedModelFormats: Format[]; protocolVersions: string[]; multiModel?: boolean; containers: { name: string; image: string; args: string[] }[] };
};
const service = manifestOf('InferenceService').object as {
  spec: { predictor: { model: { modelFormat: { name: string; version?: string }; runtime?: string; protocolVersion?: string; storageUri?: string } } };
};

test('the runtime supports ONNX version 1, auto-selected, and speaks v2 over HTTP and gRPC', () => {
  const onnx = runtime.spec.supportedModelFormats.find((f) => f.name === 'onnx');
  assert.deepEqual(onnx && { version: onnx.version, autoSelect: onnx.autoSelect }, { version: '1', autoSelect: true });
  assert.deepEqual([...runtime.spec.protocolVersions].sort(), ['grpc-v2', 'v2']);
  assert.notEqual(runtime.spec.multiModel, true, 'a single-model (not ModelMesh) runtime');
});

test('the runtime\'s container is KServe\'s kserve-container, serving /mnt/models', () => {
  assert.equal(runtime.spec.containers.length, 1);
  const [container] = runtime.spec.containers;
  assert.equal(container!.name, 'kserve-container');
  assert.ok(container!.args.includes('--model-repository=/mnt/models'));
});

test('the example InferenceService lands on this runtime, with a format and protocol it supports', () => {
  const { model } = service.spec.predictor;
  assert.equal(model.runtime, runtime.metadata.name);
  // KServe matches "mt:<name>:<version>" labels of the runtime's formats.
  assert.ok(runtime.spec.supportedModelFormats.some((f) => f.name === model.modelFormat.name && (model.modelFormat.version === undefined || f.version === model.modelFormat.version)));
  assert.ok(runtime.spec.protocolVersions.includes(model.protocolVersion ?? 'v1'), 'KServe defaults the protocol to v1, which Switchyard does not speak: set it');
  assert.match(model.storageUri ?? '', /^(gs|s3|pvc|https?|oci):\/\//);
});
