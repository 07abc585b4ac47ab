/**
 * The JavaScript that runs first in every script isolate, as the body of a
 * closure: `$0` is the host's infer Reference (called with the request and the number of the execute making it), `$1` its log Reference, `$2` the model's compiled code as a
 * function of (module, exports), `$3` the host's respond Reference (decoupled models). It keeps those handles in
 * its own scope, so the author's code only ever sees plain functions (ctx.infer, ctx.log, request.send), and
 * returns to the host the entry points it calls: load, execute, executeDecoupled, cancel, finalize.
 *
 * A decoupled request's send() hands its response to the host at once and in order (applyIgnored: nothing to
 * await), and answers false once the host has said, through cancel(), that nobody wants more. The host checks
 * the response itself, as it checks execute()'s answers; send() only refuses what the host could not tell apart.
 */
export const ISOLATE_BOOTSTRAP = String.raw`
'use strict';
const hostInfer = $0;
const hostLog = $1;
const factory = $2;
const hostRespond = $3;
const respondOptions = { arguments: { copy: true } };
// Decoupled batches still running, by the host's batch number: which of their requests were cancelled.
const running = new Map();
// The host answers with a plain value whose tensor buffers move into this isolate instead of being copied.
const inferOptions = { arguments: { copy: true }, result: { promise: true } };
// ctx.infer calls in flight, by batch (0: initialize), and how many one may have; the host sets the limit at load.
const callsInFlight = Object.create(null);
let inferLimit = { max: 0, code: '', message: '' };

function fail(message, code) {
  const error = new Error(message);
  if (code) error.code = code;
  return error;
}

// Refused here past the limit, before the request is copied out: a flood of calls never reaches the host.
async function infer(request, batch) {
  if (typeof request !== 'object' || request === null) throw fail('ctx.infer takes a request object: { model, inputs, outputs?, parameters?, version? }');
  const inFlight = callsInFlight[batch] || 0;
  if (inFlight >= inferLimit.max) throw fail(inferLimit.message, inferLimit.code);
  callsInFlight[batch] = inFlight + 1;
  let answer;
  try {
    answer = await hostInfer.apply(undefined, [request, batch], inferOptions);
  } finally {
    if (--callsInFlight[batch] === 0) delete callsInFlight[batch];
  }
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
let identityOf;

// The ctx of one execute() (0: initialize()): its ctx.infer calls are that execute's, for their limit, chain and cancellation.
function contextFor(batch) {
  return Object.freeze({ ...identityOf, infer: (request) => infer(request, batch), log });
}

// Gives a decoupled request its send() and isCancelled(), bound to its batch and position.
function attachSender(request, batch, index, state) {
  const where = state.count > 1 ? ' (request ' + (index + 1) + ' of ' + state.count + ')' : '';
  request.send = function send(response, options) {
    if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
      throw fail('send(response, options)' + where + ': options is { final?: boolean }');
    }
    const final = options !== undefined && options.final === true;
    if (state.closed) {
      throw fail('send()' + where + ' after execute() returned: a decoupled model sends every response before its execute() resolves, so await the work that sends them');
    }
    if (state.final[index]) throw fail('send()' + where + ' after the final response of this request');
    if (response !== undefined && response !== null && (typeof response !== 'object' || Array.isArray(response))) {
      throw fail('send()' + where + ' takes a response object ({ outputs } or { error }), got ' + (Array.isArray(response) ? 'an array' : typeof response));
    }
    if ((response === undefined || response === null) && !final) {
      throw fail('send()' + where + ' needs a response ({ outputs } or { error }), or send(undefined, { final: true }) to close the request without one');
    }
    if (state.cancelled[index]) {
      if (final) state.final[index] = true;
      return false;
    }
    try {
      hostRespond.applyIgnored(undefined, [batch, index, response === undefined ? null : response, final], respondOptions);
    } catch (err) {
      throw fail('send()' + where + ': the response cannot leave the isolate (' + (err && err.message) + '); a response is plain data: { outputs: { NAME: { datatype?, shape, data } } } or { error: \'...\' }');
    }
    if (final) state.final[index] = true;
    state.sent[index]++;
    return true;
  };
  request.isCancelled = function isCancelled() {
    return state.cancelled[index];
  };
}

return {
  async load(identity) {
    const module = { exports: {} };
    factory(module, module.exports);
    const Model = module.exports && module.exports.default;
    if (typeof Model !== 'function') {
      throw fail('model.ts must export a class as its default export: export default class { async execute(requests, ctx) { ... } }');
    }
    inferLimit = identity.inferLimit;
    identityOf = { name: identity.name, version: identity.version, instance: identity.instance, config: identity.config };
    model = new Model();
    if (typeof model.execute !== 'function') throw fail('the default export of model.ts has no execute(requests, ctx) method');
    if (typeof model.initialize === 'function') await model.initialize(contextFor(0));
  },
  async execute(requests, batch) {
    const responses = await model.execute(requests, contextFor(batch));
    if (!Array.isArray(responses)) throw fail('execute() must return an array with one response per request, got ' + (responses === null ? 'null' : typeof responses));
    if (responses.length !== requests.length) {
      throw fail('execute() returned ' + responses.length + ' response(s) for ' + requests.length + ' request(s); return one per request, in order');
    }
    return responses;
  },
  async executeDecoupled(requests, batch) {
    const state = {
      count: requests.length, closed: false,
      cancelled: requests.map(() => false), final: requests.map(() => false), sent: requests.map(() => 0),
    };
    running.set(batch, state);
    requests.forEach((request, index) => attachSender(request, batch, index, state));
    try {
      await model.execute(requests, contextFor(batch));
    } finally {
      state.closed = true;
      running.delete(batch);
    }
    return { sent: state.sent };
  },
  cancel(batch, index) {
    const state = running.get(batch);
    if (state) state.cancelled[index] = true;
  },
  async finalize() {
    if (model && typeof model.finalize === 'function') await model.finalize();
  },
};
`;
