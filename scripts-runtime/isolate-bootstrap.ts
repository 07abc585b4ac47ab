/**
 * The JavaScript that runs first in every script isolate, as the body of a
 * closure: `$0` is the host's infer Reference, `$1` its log Reference, `$2` the model's compiled code as a
 * function of (module, exports). It keeps those handles in its own scope, so the author's code only ever sees plain
 * functions (ctx.infer, ctx.log), and returns to the host the three entry
 * points it calls: load, execute, finalize.
 */
export const ISOLATE_BOOTSTRAP = String.raw`
'use strict';
const hostInfer = $0;
const hostLog = $1;
const factory = $2;
// The host answers with a plain value whose tensor buffers move into this isolate instead of being copied.
const inferOptions = { arguments: { copy: true }, result: { promise: true } };

function fail(message, code) {
  const error = new Error(message);
  if (code) error.code = code;
  return error;
}

async function infer(request) {
  if (typeof request !== 'object' || request === null) throw fail('ctx.infer takes a request object: { model, inputs, outputs?, parameters?, version? }');
  const answer = await hostInfer.apply(undefined, [request], inferOptions);
  if (answer.error !== undefined) throw fail(answer.error, answer.code);
  return { outputs: answer.outputs, ...(answer.parameters ? { parameters: answer.parameters } : {}) };
}

function logAt(level) {
  return (...parts) => {
    const text = parts.map((p) => (typeof p === 'string' ? p : (() => { try { return JSON.stringify(p); } catch { return String(p); } })())).join(' ');
    hostLog.applyIgnored(undefined, [level, text]);
  };
}
const log = Object.freeze({ info: logAt('info'), warn: logAt('warn'), error: logAt('error') });

let model;
let ctx;

return {
  async load(identity) {
    const module = { exports: {} };
    factory(module, module.exports);
    const Model = module.exports && module.exports.default;
    if (typeof Model !== 'function') {
      throw fail('model.ts must export a class as its default export: export default class { async execute(requests, ctx) { ... } }');
    }
    ctx = Object.freeze({
      name: identity.name,
      version: identity.version,
      instance: identity.instance,
      config: identity.config,
      infer,
      log,
    });
    model = new Model();
    if (typeof model.execute !== 'function') throw fail('the default export of model.ts has no execute(requests, ctx) method');
    if (typeof model.initialize === 'function') await model.initialize(ctx);
  },
  async execute(requests) {
    const responses = await model.execute(requests, ctx);
    if (!Array.isArray(responses)) throw fail('execute() must return an array with one response per request, got ' + (responses === null ? 'null' : typeof responses));
    if (responses.length !== requests.length) {
      throw fail('execute() returned ' + responses.length + ' response(s) for ' + requests.length + ' request(s); return one per request, in order');
    }
    return responses;
  },
  async finalize() {
    if (model && typeof model.finalize === 'function') await model.finalize();
  },
};
`;
