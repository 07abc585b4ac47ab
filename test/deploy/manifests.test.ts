/**
 * Every manifest under deploy/ is a valid object of its kind, and the
 * validation is shown to bite: broken copies of the real manifests fail.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { DEPLOY_DIR, deployFiles, deployManifests, isYamlOrJson, manifestOf, NOT_MANIFESTS, parseDeployFile } from './deploy-files.ts';
import { KNOWN_KINDS, ManifestError, validateManifest } from './manifest-validator.ts';

type Json = Record<string, unknown>;

function clone(doc: Json): Json {
  return structuredClone(doc);
}

function assertInvalid(doc: Json, pattern: RegExp): void {
  assert.throws(() => validateManifest(doc), (err: unknown) => {
    assert.ok(err instanceof ManifestError, `expected a ManifestError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('every YAML and JSON file under deploy/ parses', () => {
  const files = deployFiles().filter(isYamlOrJson);
  assert.ok(files.length >= 10, `found only ${files.length} files`);
  for (const file of files) assert.doesNotThrow(() => parseDeployFile(file), file);
  for (const file of NOT_MANIFESTS) assert.ok(files.includes(file), `${file} is listed as not a manifest but does not exist`);
});

test('every manifest validates against its kind\'s schema, unknown fields refused', () => {
  const docs = deployManifests();
  const kinds = new Set(docs.map((d) => `${String(d.object['apiVersion'])}/${String(d.object['kind'])}`));
  for (const expected of [
    'apps/v1/Deployment', 'v1/Service', 'autoscaling/v2/HorizontalPodAutoscaler', 'policy/v1/PodDisruptionBudget',
    'networking.k8s.io/v1/Ingress', 'monitoring.coreos.com/v1/ServiceMonitor', 'networking.istio.io/v1/DestinationRule',
    'serving.kserve.io/v1alpha1/ServingRuntime', 'serving.kserve.io/v1beta1/InferenceService',
    'kustomize.config.k8s.io/v1beta1/Kustomization', 'kustomize.config.k8s.io/v1alpha1/Component',
  ]) {
    assert.ok(kinds.has(expected), `no ${expected} under deploy/`);
  }
  for (const doc of docs) {
    assert.doesNotThrow(() => validateManifest(doc.object), (err: unknown) => {
      assert.fail(`deploy/${doc.file} document ${doc.index}: ${(err as Error).message}`);
    });
  }
});

test('every object but a Namespace or a kustomize file has a name and the app label', () => {
  for (const { file, object } of deployManifests()) {
    const kind = String(object['kind']);
    if (['Kustomization', 'Component', 'Namespace'].includes(kind)) continue;
    const metadata = object['metadata'] as { name?: string; labels?: Record<string, string> };
    assert.match(metadata.name ?? '', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: ${kind} name`);
    assert.equal(metadata.labels?.['app.kubernetes.io/name'], 'switchyard', `${file}: ${kind} ${metadata.name} label`);
  }
});

test('a schema error in a core kind fails validation: Deployment with a string containerPort', () => {
  const broken = clone(manifestOf('Deployment').object);
  const container = (((broken['spec'] as Json)['template'] as Json)['spec'] as { containers: Json[] }).containers[0]!;
  (container['ports'] as Json[])[0]!['containerPort'] = 'eight thousand';
  assertInvalid(broken, /containerPort must be integer/);
});

test('a missing required field fails validation: Service port without a port number', () => {
  const broken = clone(manifestOf('Service').object);
  delete ((broken['spec'] as Json)['ports'] as Json[])[0]!['port'];
  assertInvalid(broken, /ports\/0 must have required property '?port'?/);
});

test('a misspelt field fails validation: readinesProbe, as kubectl apply\'s strict validation refuses it', () => {
  const broken = clone(manifestOf('Deployment').object);
  const container = (((broken['spec'] as Json)['template'] as Json)['spec'] as { containers: Json[] }).containers[0]!;
  container['readinesProbe'] = container['readinessProbe'];
  delete container['readinessProbe'];
  assertInvalid(broken, /unknown field\(s\): spec\.template\.spec\.containers\[0\]\.readinesProbe/);
});

test('the HPA needs an integer minReplicas and a named scale target', () => {
  const broken = clone(manifestOf('HorizontalPodAutoscaler').object);
  (broken['spec'] as Json)['minReplicas'] = '3';
  assertInvalid(broken, /minReplicas must be integer/);
  const unnamed = clone(manifestOf('HorizontalPodAutoscaler').object);
  delete ((unnamed['spec'] as Json)['scaleTargetRef'] as Json)['name'];
  assertInvalid(unnamed, /scaleTargetRef must have required property '?name'?/);
});

test('CRD schemas bite too: DestinationRule and ServiceMonitor', () => {
  const rule = clone(manifestOf('DestinationRule').object);
  const hash = ((((rule['spec'] as Json)['trafficPolicy'] as Json)['loadBalancer'] as Json)['consistentHash'] as Json);
  hash['httpHeaderName'] = 42;
  assertInvalid(rule, /httpHeaderName must be string/);
  hash['httpHeaderName'] = 'x-sequence-id';
  hash['httpHeader'] = 'x-sequence-id';
  assertInvalid(rule, /unknown field\(s\): spec\.trafficPolicy\.loadBalancer\.consistentHash\.httpHeader\b/);

  const monitor = clone(manifestOf('ServiceMonitor').object);
  ((monitor['spec'] as Json)['endpoints'] as Json[])[0]!['interval'] = '15 seconds';
  assertInvalid(monitor, /interval must match pattern/);
});

test('KServe schemas bite: protocol version, model format, container and inlined fields', () => {
  const runtime = clone(manifestOf('ServingRuntime').object);
  ((runtime['spec'] as Json)['protocolVersions'] as string[]).push('grpc-v3');
  assertInvalid(runtime, /protocolVersions\/2 must be equal to one of the allowed values/);

  const noName = clone(manifestOf('ServingRuntime').object);
  delete ((noName['spec'] as Json)['supportedModelFormats'] as Json[])[0]!['name'];
  assertInvalid(noName, /must have required property 'name'/);

  const badContainer = clone(manifestOf('ServingRuntime').object);
  ((badContainer['spec'] as Json)['containers'] as Json[])[0]!['argz'] = ['--model-repository=/mnt/models'];
  assertInvalid(badContainer, /unknown field\(s\): spec\.containers\[0\]\.argz/);

  const typo = clone(manifestOf('ServingRuntime').object);
  (typo['spec'] as Json)['supportedModelFormat'] = [];
  assertInvalid(typo, /must NOT have additional properties/);

  const service = clone(manifestOf('InferenceService').object);
  const model = ((service['spec'] as Json)['predictor'] as Json)['model'] as Json;
  model['protocolVersion'] = 'v3';
  assertInvalid(service, /protocolVersion must be equal to one of the allowed values/);
  model['protocolVersion'] = 'v2';
  model['storageURI'] = model['storageUri'];
  assertInvalid(service, /unknown field\(s\): spec\.predictor\.model\.storageURI/);
});

test('a kind without a validator is refused, so nothing under deploy/ escapes validation', () => {
  assertInvalid({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }, /no validator for apiVersion example\.com\/v1, kind Widget/);
  assert.ok(KNOWN_KINDS.includes('apps/v1/Deployment'));
});

test('kustomizations: every listed resource or component exists, and every manifest is listed by one', () => {
  const kustomizations = deployManifests().filter((d) => d.object['kind'] === 'Kustomization' || d.object['kind'] === 'Component');
  assert.ok(kustomizations.length >= 4);
  const listed = new Set<string>();
  for (const { file, object } of kustomizations) {
    const dir = posix.dirname(file);
    for (const entry of [...(object['resources'] as string[] ?? []), ...(object['components'] as string[] ?? [])]) {
      const target = posix.normalize(posix.join(dir, entry));
      const path = join(DEPLOY_DIR, target);
      assert.ok(existsSync(path), `deploy/${file} lists ${entry}, which does not exist`);
      if (statSync(path).isDirectory()) {
        assert.ok(existsSync(join(path, 'kustomization.yaml')), `deploy/${file} lists ${entry}, a folder without kustomization.yaml`);
      }
      listed.add(target);
    }
  }
  const kubernetesManifests = deployManifests()
    .filter((d) => (d.file.startsWith('kubernetes/') || d.file.startsWith('overlays/')) && !d.file.endsWith('kustomization.yaml'))
    .map((d) => d.file);
  for (const file of kubernetesManifests) assert.ok(listed.has(file), `deploy/${file} is not listed by any kustomization`);
});
