/**
 * What a hostile script can reach from its isolate: each attack runs inside
 * a script that reports what it got, and each must fail or find nothing of
 * the host. Escapes through constructors (the script's own, ctx's, and
 * errors from ctx.infer) land in the isolate's own realm; prototype
 * pollution stays in the isolate that did it; no isolated-vm handle is
 * reachable from anything a script can touch; there are no timers and no
 * network. Hostile return values (a poisoned Array.isArray, a Proxy, a
 * looping getter, a thrown object with a looping toString) fail the request
 * and leave the host alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import { int32x16, outputNamed, rejection, scriptConfig, stringsOf, within, writeScripts } from '../helpers/script-fixtures.ts';

/** Runs every attack and reports { attack: { ok, value } | { ok: false, error } }, plus a walk for isolated-vm handles. */
const PROBE_SCRIPT = `
const results: Record<string, unknown> = {};
const safeName = (v: any): string => { try { const c = v.constructor; return typeof c === 'function' ? c.name : String(c); } catch (e) { return '?'; } };
const describe = (v: any): unknown => {
  if (v === undefined || v === null) return String(v);
  if (typeof v !== 'object' && typeof v !== 'function') return { type: typeof v, value: String(v) };
  let keys: string[] = [];
  try { keys = Object.getOwnPropertyNames(v); } catch (e) {}
  let hasProcess = false;
  try { hasProcess = v.process !== undefined || v.require !== undefined || v.Buffer !== undefined; } catch (e) {}
  return { type: typeof v, ctor: safeName(v), keys, hasProcess };
};
const attempt = async (name: string, f: () => unknown): Promise<void> => {
  try {
    results[name] = { ok: true, value: describe(await f()) };
  } catch (e: any) {
    results[name] = { ok: false, error: String(e && e.message !== undefined ? e.message : e), errorName: e && e.name };
  }
};
const globalEval = (expression: string): unknown => (0, eval)(expression);

const HANDLE_METHODS = ['applySync', 'applySyncPromise', 'applyIgnored', 'derefInto', 'copyInto', 'copySync', 'getSync', 'setSync', 'setIgnored'];
const HANDLE_CLASSES = ['Reference', 'ExternalCopy', 'Callback', 'Isolate', 'Context', 'Script', 'Module', 'NativeModule'];
function walk(roots: Record<string, unknown>): { found: string[]; visited: number } {
  const seen = new Set<unknown>();
  const found: string[] = [];
  const queue: [unknown, string][] = Object.entries(roots).map(([k, v]) => [v, k]);
  let visited = 0;
  while (queue.length > 0 && visited < 100000) {
    const [value, path] = queue.shift()!;
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null || seen.has(value)) continue;
    seen.add(value);
    visited++;
    const ctor = safeName(value);
    let wasm = false;
    try { wasm = (value as any).constructor === (globalThis as any).WebAssembly.Module; } catch (e) {}
    if (typeof value === 'object' && HANDLE_CLASSES.includes(ctor) && !wasm) found.push(path + ' is a ' + ctor);
    for (const method of HANDLE_METHODS) {
      try { if (typeof (value as any)[method] === 'function') found.push(path + '.' + method); } catch (e) {}
    }
    let keys: (string | symbol)[] = [];
    try { keys = Reflect.ownKeys(value as object); } catch (e) {}
    if (ArrayBuffer.isView(value)) keys = [];
    for (const key of keys) {
      let d: PropertyDescriptor | undefined;
      try { d = Object.getOwnPropertyDescriptor(value, key); } catch (e) { continue; }
      if (!d) continue;
      const at = path + '.' + String(key);
      if ('value' in d) queue.push([d.value, at]);
      if (d.get) queue.push([d.get, at + '<get>']);
      if (d.set) queue.push([d.set, at + '<set>']);
    }
    try { queue.push([Object.getPrototypeOf(value), path + '.__proto__']); } catch (e) {}
  }
  return { found, visited };
}

function sloppyExecute(this: any, requests: any[], ctx: any) { return (this as any).run(requests, ctx, (sloppyExecute as any).caller); }

export default class Probe {
  execute = sloppyExecute;
  async run(requests: any[], ctx: any, caller: unknown) {
    results['caller of execute'] = describe(caller);
    await attempt('process', () => globalEval('typeof process === "undefined" ? undefined : process'));
    await attempt('require', () => globalEval('typeof require === "undefined" ? undefined : require'));
    await attempt('global', () => globalEval('typeof global === "undefined" ? undefined : global'));
    await attempt('globalThis.process', () => (globalThis as any).process);
    await attempt('globalThis.Buffer', () => (globalThis as any).Buffer);
    await attempt('module.constructor._load', () => (module as any).constructor._load);
    await attempt('module.require', () => (module as any).require);
    await attempt('module.constructor.constructor process', () => (module as any).constructor.constructor('return process')());
    await attempt('dynamic import', () => { const specifier = ['node', 'fs'].join(':'); return import(specifier); });
    await attempt('dynamic import of a relative file', () => { const specifier = './' + 'x.js'; return import(specifier); });
    await attempt('Function return this', () => Function('return this')());
    await attempt('this.constructor.constructor process', () => (this as any).constructor.constructor('return process')());
    await attempt('ctx.infer.constructor process', () => ctx.infer.constructor('return process')());
    await attempt('ctx.log.info.constructor process', () => ctx.log.info.constructor('return process')());
    await attempt('input data constructor process', () => requests[0].inputs.X.data.constructor.constructor('return process')());
    let inferError: any;
    try { await ctx.infer({ model: 'nope', inputs: {} }); } catch (e) { inferError = e; }
    await attempt('ctx.infer error constructor process', () => inferError.constructor.constructor('return process')());
    await attempt('ctx.infer error __proto__ constructor process', () => inferError.__proto__.constructor.constructor('return process')());
    let malformedError: any;
    try { await ctx.infer({ model: 'add_sub', inputs: 5 }); } catch (e) { malformedError = e; }
    await attempt('malformed ctx.infer error constructor process', () => malformedError.constructor.constructor('return process')());
    const answer = await ctx.infer({ model: 'add_sub', inputs: { INPUT0: requests[0].inputs.X, INPUT1: requests[0].inputs.X } });
    await attempt('ctx.infer answer constructor process', () => answer.outputs.OUTPUT0.data.constructor.constructor('return process')());
    results['inferError'] = { message: inferError.message, code: inferError.code, stack: String(inferError.stack), keys: Object.getOwnPropertyNames(inferError) };

    // Stack frames of a throw inside ctx.log's own code, with V8's structured stack API.
    const frames: unknown[] = [];
    (Error as any).prepareStackTrace = (_e: unknown, callSites: any[]) => {
      for (const site of callSites) {
        try { frames.push(site.getThis()); } catch (e) {}
        try { frames.push(site.getFunction()); } catch (e) {}
      }
      return 'frames';
    };
    try { ctx.log.info({ toJSON() { throw new Error('from toJSON'); } }); } catch (e: any) { void e.stack; }
    try { await ctx.infer({ get model() { void new Error('from a getter').stack; return 'nope'; }, inputs: {} }); } catch (e: any) { void e.stack; }
    (Error as any).prepareStackTrace = undefined;
    results['frames'] = frames.map(describe);

    // Every value the bootstrap awaits: a getter on Promise.prototype.constructor runs for each native promise
    // awaited (the spec's PromiseResolve reads it), and a patched then() sees what the bootstrap chains.
    const awaited: unknown[] = [];
    const constructorDescriptor = Object.getOwnPropertyDescriptor(Promise.prototype, 'constructor')!;
    const originalThen = Promise.prototype.then;
    let inside = false;
    Object.defineProperty(Promise.prototype, 'constructor', {
      configurable: true,
      get(this: Promise<unknown>) {
        // then() itself reads .constructor (SpeciesConstructor): hook each promise once, not recursively.
        if (!inside) {
          inside = true;
          try { originalThen.call(this, (v: unknown) => { awaited.push(v); }, (e: unknown) => { awaited.push(e); }); } finally { inside = false; }
        }
        return Promise;
      },
    });
    (Promise.prototype as any).then = function (this: Promise<unknown>, onFulfilled?: any, onRejected?: any) {
      return originalThen.call(this, (v: unknown) => { awaited.push(v); return onFulfilled ? onFulfilled(v) : v; }, onRejected);
    };
    try {
      await ctx.infer({ model: 'add_sub', inputs: { INPUT0: requests[0].inputs.X, INPUT1: requests[0].inputs.X } });
      await ctx.infer({ model: 'nope', inputs: {} }).catch(() => {});
      for (let i = 0; i < 10; i++) await null;
    } finally {
      Object.defineProperty(Promise.prototype, 'constructor', constructorDescriptor);
      (Promise.prototype as any).then = originalThen;
    }
    results['awaited'] = awaited.map(describe);

    const timers: Record<string, string> = {};
    for (const name of ['setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'fetch', 'XMLHttpRequest', 'WebSocket', 'Deno', 'Bun', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', 'console']) {
      timers[name] = typeof (globalThis as any)[name];
    }
    results['timers'] = timers;
    await attempt('console.log', () => (globalThis as any).console?.log('from the isolate'));
    // Synchronous compiles: the promise of an async WebAssembly.compile() may never settle in isolated-vm (laverdet/isolated-vm#308).
    await attempt('WebAssembly.Module of arbitrary bytes', () => new (globalThis as any).WebAssembly.Module(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    await attempt('WebAssembly.Module of an empty module', () => new (globalThis as any).WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])));
    results['globals'] = Object.getOwnPropertyNames(globalThis).sort();
    results['ctx frozen'] = Object.isFrozen(ctx) && Object.isFrozen(ctx.log);

    results['walk'] = walk({
      globalThis, ctx, infer: ctx.infer, log: ctx.log, info: ctx.log.info, requests, inferError, malformedError, answer, module,
      exports, Probe, self: this, frames, caller,
    });
    results['walk of awaited'] = walk({ awaited });
    return requests.map(() => ({ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(results)] } } }));
  }
}
`;

/** Pollutes everything it can reach, then answers; mode 'check' reports what it sees instead. */
const POLLUTER_SCRIPT = `
export default class Polluter {
  async execute(requests: any[], ctx: any) {
    (Object.prototype as any).polluted = 1;
    (Array.prototype as any).push = function () { return 'hijacked'; };
    requests[0].inputs.X.__proto__.hacked = 1;
    requests[0].inputs.X.data.__proto__.__proto__.hacked = 1;
    Object.prototype.toString = () => 'hijacked';
    (JSON as any).parse = () => ({ polluted: true });
    (Error.prototype as any).polluted = 1;
    (Function.prototype as any).call = () => 'hijacked';
    (Promise.prototype as any).polluted = 1;
    const poisoned = JSON.stringify({ __proto__: { polluted: 1 } });
    let viaParams = 'no error';
    try {
      await ctx.infer({ model: 'add_sub', inputs: { INPUT0: requests[0].inputs.X, INPUT1: requests[0].inputs.X },
        parameters: Object.assign(Object.create(null), { ['__proto__']: { polluted: 1 } }) });
    } catch (e: any) { viaParams = e.message; }
    return requests.map(() => ({
      outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: [viaParams + ' | ' + poisoned] } },
      ['__proto__']: { polluted: 1 },
    }));
  }
}
`;

/** Reports whether its own realm looks clean. */
const CLEAN_SCRIPT = `
export default class Clean {
  async execute(requests: any[]) {
    const report = {
      polluted: ({} as any).polluted, hacked: (requests[0].inputs.X as any).hacked, dataHacked: (requests[0].inputs.X.data as any).hacked,
      push: String([].push).includes('[native code]'), toString: Object.prototype.toString.call([]),
      parse: JSON.parse('{"a":1}').a, call: typeof Function.prototype.call, errorPolluted: (new Error('x') as any).polluted,
    };
    return requests.map(() => ({ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(report)] } } }));
  }
}
`;

/** Hostile answers by mode. */
const HOSTILE_SCRIPT = `
export default class Hostile {
  async execute(requests: any[]) {
    const mode = requests[0].parameters.mode;
    if (mode === 'is_array') {
      Array.isArray = () => true;
      return { length: 1, 0: { outputs: {} } } as any;
    }
    if (mode === 'proxy') return [new Proxy({}, { get: () => { throw new Error('trap'); } })];
    if (mode === 'looping_getter') return [{ get outputs() { for (;;) {} } }];
    if (mode === 'looping_to_string') throw { toString() { for (;;) {} }, message: { toString() { for (;;) {} } } };
    if (mode === 'throw_null') throw null;
    if (mode === 'function_output') return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: [() => 1] } } }];
    if (mode === 'symbol_output') return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: [Symbol('x')] } } }];
    return requests.map(() => ({ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: ['fine'] } } }));
  }
}
`;

describe('script isolation', () => {
  let root: string;
  let engine: InferenceEngine;
  const problems: unknown[] = [];
  const onProblem = (err: unknown): void => { problems.push(err); };

  before(async () => {
    process.on('unhandledRejection', onProblem);
    process.on('uncaughtExceptionMonitor', onProblem);
    const report = scriptConfig({ outputs: [['REPORT', 'TYPE_STRING', [1]]], executeTimeoutMs: 3000 });
    root = await makeRepository({
      probe: { config: report, versions: {} },
      polluter: { config: report, versions: {} },
      clean: { config: report, versions: {} },
      hostile: { config: scriptConfig({ outputs: [['REPORT', 'TYPE_STRING', [1]]], executeTimeoutMs: 300 }), versions: {} },
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
    });
    await writeScripts(root, { probe: { 1: PROBE_SCRIPT }, polluter: { 1: POLLUTER_SCRIPT }, clean: { 1: CLEAN_SCRIPT }, hostile: { 1: HOSTILE_SCRIPT } });
    engine = await startEngine(root);
    assert.deepEqual(engine.loadFailures(), []);
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
    process.off('unhandledRejection', onProblem);
    process.off('uncaughtExceptionMonitor', onProblem);
  });

  const reportOf = async (model: string, parameters?: Record<string, string>): Promise<Record<string, any>> => {
    const response = await within(5000, model, engine.infer({ modelName: model, inputs: [int32x16()], ...(parameters ? { parameters } : {}) }));
    return JSON.parse(stringsOf(outputNamed(response.outputs, 'REPORT'))[0]!) as Record<string, any>;
  };

  describe('escapes', () => {
    let probe: Record<string, any>;
    before(async () => { probe = await reportOf('probe'); });

    for (const name of ['process', 'require', 'global', 'globalThis.process', 'globalThis.Buffer', 'module.constructor._load', 'module.require']) {
      test(`${name} is not there`, () => {
        assert.deepEqual(probe[name], { ok: true, value: 'undefined' });
      });
    }

    for (const name of [
      'module.constructor.constructor process', 'this.constructor.constructor process', 'ctx.infer.constructor process',
      'ctx.log.info.constructor process', 'input data constructor process', 'ctx.infer error constructor process',
      'ctx.infer error __proto__ constructor process', 'malformed ctx.infer error constructor process', 'ctx.infer answer constructor process',
    ]) {
      test(`${name}: the constructor is the isolate's own, where process is not defined`, () => {
        assert.equal(probe[name].ok, false, JSON.stringify(probe[name]));
        assert.equal(probe[name].errorName, 'ReferenceError');
        assert.equal(probe[name].error, 'process is not defined');
      });
    }

    test('dynamic import() of a computed specifier fails', () => {
      for (const name of ['dynamic import', 'dynamic import of a relative file']) {
        assert.equal(probe[name].ok, false, `${name}: ${JSON.stringify(probe[name])}`);
      }
    });

    test('Function("return this")() is the isolate\'s global: no process, require, Buffer or module system', () => {
      const found = probe['Function return this'];
      assert.equal(found.ok, true);
      assert.equal(found.value.hasProcess, false);
      const forbidden = ['process', 'require', 'Buffer', 'module', 'exports', '__dirname', '__filename', 'global', 'ivm', '_ivm',
        'setTimeout', 'setInterval', 'setImmediate', 'fetch', '$0', '$1', '$2', 'hostInfer', 'hostLog', 'factory'];
      for (const name of forbidden) assert.ok(!found.value.keys.includes(name), `global '${name}' is reachable`);
      assert.deepEqual(found.value.keys.sort(), probe['globals'], 'the same global the script sees as globalThis');
    });

    test('the global holds only standard built-ins', () => {
      const standard = new Set(Object.getOwnPropertyNames(globalThis));
      const extra = (probe['globals'] as string[]).filter((name) => !standard.has(name));
      // Whatever the isolate has that this Node process lacks must still be harmless, built-in JavaScript.
      // `gc` is there but undefined: V8 will not let it be deleted, and the bootstrap keeps the function for the host
      // (test/backends/typescript/answer-memory.test.ts checks that a script cannot call it).
      assert.deepEqual(extra.filter((name) => !/^(?:Iterator|escape|unescape|Float16Array|gc)$/.test(name)), [], `extra globals: ${extra.join(', ')}`);
    });

    test('execute().caller does not reveal the bootstrap', () => {
      assert.equal(probe['caller of execute'], 'null');
    });

    test('errors from ctx.infer are plain isolate errors: message and code, no host stack', () => {
      const error = probe['inferError'];
      assert.equal(error.message, `Request for unknown model: 'nope' is not found`);
      assert.equal(error.code, 'MODEL_NOT_FOUND');
      assert.deepEqual(error.keys.sort(), ['code', 'message', 'stack']);
      assert.doesNotMatch(error.stack, /node_modules|engine\/|scripts-runtime\/|\.ts:\d+:\d+\)?\n.*\.ts/, error.stack);
    });

    test('stack frames reachable through Error.prepareStackTrace hold nothing of the host', () => {
      for (const frame of probe['frames'] as unknown[]) {
        if (typeof frame === 'object' && frame !== null) assert.equal((frame as { hasProcess: boolean }).hasProcess, false);
      }
    });

    test('ctx and ctx.log are frozen', () => {
      assert.equal(probe['ctx frozen'], true);
    });

    test('values the bootstrap awaits were seen by the script\'s hooks (so the walk covers them)', () => {
      assert.ok((probe['awaited'] as unknown[]).length >= 2, JSON.stringify(probe['awaited']));
    });

    test('no isolated-vm handle is reachable from globalThis, ctx, requests, answers or errors', () => {
      const { found, visited } = probe['walk'] as { found: string[]; visited: number };
      assert.ok(visited > 500, `the walk visited ${visited} objects`);
      assert.deepEqual(found, []);
    });

    // A getter on Promise.prototype.constructor sees every native promise the bootstrap awaits, and so what it resolves to.
    test('no isolated-vm handle is among the values the bootstrap awaits', () => {
      assert.deepEqual((probe['walk of awaited'] as { found: string[] }).found, []);
    });

    test('no timers, no network, and no WebAssembly unless the model allows it', () => {
      const timers = probe['timers'] as Record<string, string>;
      for (const name of ['setTimeout', 'setInterval', 'setImmediate', 'fetch', 'XMLHttpRequest', 'WebSocket', 'Deno', 'Bun', 'WebAssembly']) {
        assert.equal(timers[name], 'undefined', name);
      }
      // V8's own console is there, writing nowhere.
      assert.equal(probe['console.log'].ok, true);
      assert.equal(probe['WebAssembly.Module of arbitrary bytes'].ok, false);
      assert.equal(probe['WebAssembly.Module of an empty module'].ok, false);
    });
  });

  describe('prototype pollution stays in the isolate that did it', () => {
    let viaParams: string;
    before(async () => {
      const response = await engine.infer({ modelName: 'polluter', inputs: [int32x16()] });
      viaParams = stringsOf(outputNamed(response.outputs, 'REPORT'))[0]!;
      await engine.infer({ modelName: 'polluter', inputs: [int32x16()] });
    });

    test('the host\'s prototypes are untouched', () => {
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
      assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
      assert.match(String(Array.prototype.push), /\[native code\]/);
      const list: number[] = [];
      list.push(1);
      assert.deepEqual(list, [1]);
      assert.equal(Object.prototype.toString.call([]), '[object Array]');
      assert.deepEqual(JSON.parse('{"a":1}'), { a: 1 });
      assert.match(String(Function.prototype.call), /\[native code\]/);
      assert.equal((Int32Array.prototype as unknown as Record<string, unknown>)['hacked'], undefined);
      assert.equal((Object.getPrototypeOf(Int32Array.prototype) as Record<string, unknown>)['hacked'], undefined);
      assert.equal((Error.prototype as unknown as Record<string, unknown>)['polluted'], undefined);
      assert.equal((Promise.prototype as unknown as Record<string, unknown>)['polluted'], undefined);
    });

    test('a __proto__ parameter in a ctx.infer call is refused', () => {
      assert.match(viaParams, /^ctx\.infer to 'add_sub': parameter '__proto__' is Object/);
    });

    test('other scripts see a clean realm', async () => {
      assert.deepEqual(await reportOf('clean'), {
        push: true, toString: '[object Array]', parse: 1, call: 'function',
      });
    });

    test('other models keep working', async () => {
      const response = await engine.infer({ modelName: 'add_sub', inputs: [int32x16('INPUT0'), int32x16('INPUT1')] });
      assert.equal(response.outputs.length, 2);
    });
  });

  describe('hostile answers fail the request, not the host', () => {
    const cases: readonly (readonly [string, RegExp])[] = [
      // The poisoned check inside the isolate passes; the host sees an object, not an array, and finds no outputs in it.
      ['is_array', /the response has no output 'REPORT'|must return an array|returned .* as a response/],
      // A Proxy is read as the plain data it shows (here: an object with no keys), never handed to the host as it is.
      ['proxy', /the response has no outputs object/],
      ['looping_getter', /time limit of 300 ms/],
      ['looping_to_string', /time limit of 300 ms|execute\(\) threw/],
      ['throw_null', /execute\(\) threw: null/],
      ['function_output', /could not be cloned|element 0/],
      ['symbol_output', /could not be cloned|element 0/],
    ];
    for (const [mode, expected] of cases) {
      test(`${mode}`, async () => {
        const err = await rejection(within(3000, mode, engine.infer({ modelName: 'hostile', inputs: [int32x16()], parameters: { mode } })));
        assert.equal(err.code, 'INFERENCE_FAILED');
        assert.match(err.message, expected);
        const next = await engine.infer({ modelName: 'hostile', inputs: [int32x16()] });
        assert.deepEqual(stringsOf(outputNamed(next.outputs, 'REPORT')), ['fine'], 'the next request is answered');
      });
    }
  });

  test('nothing reached the host as an unhandled rejection or uncaught exception', () => {
    assert.deepEqual(problems, []);
  });
});
