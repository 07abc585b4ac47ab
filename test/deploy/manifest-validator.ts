/**
 * Validates one manifest the way the API server (with strict field
 * validation, as `kubectl apply` asks) would: against its kind's schema,
 * then for unknown fields.
 *
 * - Core kinds: kubernetes-models' JSON-schema validators.
 * - CRDs: @kubernetes-models/prometheus-operator (ServiceMonitor),
 *   @kubernetes-models/istio (DestinationRule). Its 2.x line, the last that
 *   installs on Node 20 without an engine warning, ships networking v1beta1
 *   only; Istio's v1 DestinationRule is v1beta1 promoted with the same
 *   fields, so a v1 rule is checked against the v1beta1 model.
 * - KServe (no package exists): JSON schemas in schemas/, written from
 *   KServe's API types, with ajv; the core/v1 parts inside them
 *   (containers, volumes, the inlined PodSpec and Container) go through
 *   kubernetes-models like the rest.
 * - Kustomize's own files: schemas/kustomization.schema.json.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { DestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Container } from 'kubernetes-models/v1/Container';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PodSpec } from 'kubernetes-models/v1/PodSpec';
import { Service } from 'kubernetes-models/v1/Service';
import { Volume } from 'kubernetes-models/v1/Volume';
import { unknownFields, type DeclaredType } from './known-fields.ts';

type Json = Record<string, unknown>;
type ModelClass = new (data: Json) => { validate(): void };

const SCHEMAS = join(dirname(fileURLToPath(import.meta.url)), 'schemas');

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

/** Schema check with a kubernetes-models class, then the unknown-field check. */
function modelCheck(model: unknown, type: DeclaredType, value: Json, at: string): void {
  try {
    new (model as ModelClass)(value).validate();
  } catch (err) {
    throw new ManifestError(`${at}: ${(err as Error).message}`);
  }
  const unknown = unknownFields(value, type, at);
  if (unknown.length > 0) throw new ManifestError(`unknown field(s): ${unknown.join(', ')}`);
}

const schemaValidators = new Map<string, { ajv: Ajv; validate: ValidateFunction }>();

function schemaCheck(schemaFile: string, value: unknown): void {
  let compiled = schemaValidators.get(schemaFile);
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: true });
    compiled = { ajv, validate: ajv.compile(JSON.parse(readFileSync(join(SCHEMAS, schemaFile), 'utf8')) as object) };
    schemaValidators.set(schemaFile, compiled);
  }
  if (!compiled.validate(value)) {
    throw new ManifestError(`${schemaFile}: ${compiled.ajv.errorsText(compiled.validate.errors, { separator: '; ' })}`);
  }
}

const CORE = 'kubernetes-models';
const core = (model: unknown, module: string, name: string) => (value: Json): void => modelCheck(model, { module: `${CORE}/${module}`, name }, value, '');

const CONTAINER: DeclaredType = { module: `${CORE}/v1/Container`, name: 'IContainer' };
const VOLUME: DeclaredType = { module: `${CORE}/v1/Volume`, name: 'IVolume' };
const POD_SPEC: DeclaredType = { module: `${CORE}/v1/PodSpec`, name: 'IPodSpec' };
const OBJECT_META: DeclaredType = { module: '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta', name: 'IObjectMeta' };

function pick(value: Json, keys: readonly string[], keep: boolean): Json {
  return Object.fromEntries(Object.entries(value).filter(([k]) => keys.includes(k) === keep));
}

function kserveServingRuntime(value: Json): void {
  schemaCheck('serving-runtime.schema.json', value);
  modelCheck(ObjectMeta, OBJECT_META, value['metadata'] as Json, 'metadata');
  const spec = value['spec'] as Json;
  (spec['containers'] as Json[]).forEach((c, i) => modelCheck(Container, CONTAINER, c, `spec.containers[${i}]`));
  ((spec['volumes'] ?? []) as Json[]).forEach((v, i) => modelCheck(Volume, VOLUME, v, `spec.volumes[${i}]`));
}

/** ModelSpec's own fields; the rest of `model` is an inlined core/v1 Container. */
const MODEL_SPEC_FIELDS = ['modelFormat', 'runtime', 'storageUri', 'runtimeVersion', 'protocolVersion', 'storage'];
/** PredictorSpec's implementations and ComponentExtensionSpec; the rest is an inlined PodSpec. */
const PREDICTOR_FIELDS = [
  'sklearn', 'xgboost', 'tensorflow', 'pytorch', 'triton', 'onnx', 'huggingface', 'pmml', 'lightgbm', 'paddle', 'model',
  'storageUris', 'workerSpec',
  'minReplicas', 'maxReplicas', 'scaleTarget', 'scaleMetric', 'containerConcurrency', 'timeout', 'canaryTrafficPercent',
  'logger', 'batcher', 'labels', 'annotations', 'deploymentStrategy',
];

function kserveInferenceService(value: Json): void {
  schemaCheck('inference-service.schema.json', value);
  modelCheck(ObjectMeta, OBJECT_META, value['metadata'] as Json, 'metadata');
  const predictor = (value['spec'] as Json)['predictor'] as Json;
  const implementations = Object.keys(pick(predictor, PREDICTOR_FIELDS.slice(0, 11), true));
  const podSpec = pick(predictor, PREDICTOR_FIELDS, false);
  if (implementations.length + (podSpec['containers'] ? 1 : 0) !== 1) {
    throw new ManifestError(`spec.predictor: exactly one of ${PREDICTOR_FIELDS.slice(0, 11).join(', ')} or containers must be given`);
  }
  // An inlined PodSpec without containers is valid in KServe (only overrides).
  modelCheck(PodSpec, POD_SPEC, { containers: [], ...podSpec }, 'spec.predictor');
  const model = predictor['model'] as Json | undefined;
  if (model) {
    const container = pick(model, MODEL_SPEC_FIELDS, false);
    // The model's container takes its name from KServe (kserve-container).
    modelCheck(Container, CONTAINER, { name: 'kserve-container', ...container }, 'spec.predictor.model');
  }
}

const VALIDATORS: Readonly<Record<string, (value: Json) => void>> = {
  'apps/v1/Deployment': core(Deployment, 'apps/v1/Deployment', 'IDeployment'),
  'v1/Service': core(Service, 'v1/Service', 'IService'),
  'v1/Namespace': core(Namespace, 'v1/Namespace', 'INamespace'),
  'autoscaling/v2/HorizontalPodAutoscaler': core(HorizontalPodAutoscaler, 'autoscaling/v2/HorizontalPodAutoscaler', 'IHorizontalPodAutoscaler'),
  'policy/v1/PodDisruptionBudget': core(PodDisruptionBudget, 'policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'),
  'networking.k8s.io/v1/Ingress': core(Ingress, 'networking.k8s.io/v1/Ingress', 'IIngress'),
  'monitoring.coreos.com/v1/ServiceMonitor': (value) => modelCheck(ServiceMonitor,
    { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor', name: 'IServiceMonitor' }, value, ''),
  'networking.istio.io/v1/DestinationRule': (value) => modelCheck(DestinationRule,
    { module: '@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule', name: 'IDestinationRule' },
    { ...value, apiVersion: DestinationRule.apiVersion }, ''),
  'serving.kserve.io/v1alpha1/ServingRuntime': kserveServingRuntime,
  'serving.kserve.io/v1alpha1/ClusterServingRuntime': kserveServingRuntime,
  'serving.kserve.io/v1beta1/InferenceService': kserveInferenceService,
  'kustomize.config.k8s.io/v1beta1/Kustomization': (value) => schemaCheck('kustomization.schema.json', value),
  'kustomize.config.k8s.io/v1alpha1/Component': (value) => schemaCheck('kustomization.schema.json', value),
};

/** The apiVersion/kind pairs this validator knows. */
export const KNOWN_KINDS: readonly string[] = Object.keys(VALIDATORS);

/** Throws a ManifestError saying what is wrong; returns quietly for a valid manifest. */
export function validateManifest(value: Json): void {
  const key = `${String(value['apiVersion'])}/${String(value['kind'])}`;
  const validate = VALIDATORS[key];
  if (!validate) throw new ManifestError(`no validator for apiVersion ${String(value['apiVersion'])}, kind ${String(value['kind'])}`);
  validate(value);
}
