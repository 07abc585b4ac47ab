/**
 * The JavaScript that runs first in every script isolate. This file is never imported: bootstrap-source.ts reads it as
 * text, strips its types with esbuild, and hands the isolate a closure body that declares isolateBootstrap() and
 * returns isolateBootstrap($0, $1, $2, $3, $4, $5, $6). So it may import types only, and its code may use nothing but the
 * standard built-ins an isolate has (tsconfig.json beside it checks it against those alone).
 *
 * The arguments: the host's infer Reference (called with the request, the number of the execute making it and a
 * ticket; the host answers later through answer(ticket, ...), a call of its own, so the answer is copied in inside a
 * call, where running past the memory limit ends the isolate rather than the process), its log Reference, the model's compiled code as a function of (module, exports), the host's respond Reference (decoupled
 * models), the BootstrapSettings (limits) as a plain copy, and the two host References of inline executes (inferInline,
 * settled; see below). It keeps those handles in its own scope, so the author's
 * code only ever sees plain functions (ctx.infer, ctx.log, request.send), and returns to the host the entry points it
 * calls: load, execute, executeInline, answer, executeDecoupled, cancel, finalize, collect (V8's gc(), which the
 * bootstrap takes off the global before the author's code runs).
 *
 * Inline executes (parameters.inline_slice_ms): the host runs executeInline() with applySync, so the script runs on the
 * host's thread rather than the isolate's own, and no thread hand-off is paid. Nothing in it waits across the boundary:
 * its ctx.infer hands the request over with a synchronous call (inferInline, with a ticket) and waits on a promise that
 * the host settles later through answer(ticket, ...), again with applySync; the execute's outcome goes back the same
 * way (settled). Every such call is one bounded synchronous slice; the host bounds each with isolated-vm's timeout.
 *
 * It runs before the author's module does, and the author's code can replace any built-in afterwards
 * (Array.prototype.map, Promise.prototype.then, JSON.stringify, Symbol.iterator, Object.prototype setters ...).
 * So the bootstrap captures the intrinsics it needs first and uses only those: no method lookups on values,
 * no array iteration or spread, objects it hands to isolated-vm without a prototype. What the author can still
 * break is only their own request, and the host's watchdog bounds that in time.
 *
 * Every value leaving the isolate (execute()'s answer, a ctx.infer request, a send()) is first copied by
 * copyOut(): plain data only, each occurrence of a string or buffer counted again, no deeper than MAX_DEPTH, and
 * at most `maxTransferBytes` in all, so the host never copies more than the limit. Entry points never throw across
 * the boundary: they answer { ok: true, value } or { ok: false, message, code }, with the message cut to
 * MAX_ERROR_CHARS.
 *
 * A decoupled request's send() hands its response to the host and waits for the host's answer (applySyncPromise):
 * true when taken, false once nobody wants more. The host holds the answer back while the stream's buffer is full,
 * which is how send() waits for a slow reader.
 *
 * The types below are erased and change nothing at run time; the code keeps the exact shape the hardening relies on
 * (`{ __proto__: null, ... }` literals, captured intrinsics, no helpers).
 */

/** The limits the bootstrap enforces inside the isolate, handed in as a plain copy. */
export interface BootstrapSettings {
  /** The most one value leaving the isolate may hold (execute()'s answer, a ctx.infer request, one send()). */
  readonly maxTransferBytes: number;
  readonly logLineMaxChars: number;
  readonly logLinesPerExecute: number;
  readonly allowWebAssembly: boolean;
}

/** What load() gets from the host: the instance's identity and its ctx.infer limit. */
export interface BootstrapIdentity {
  readonly name: string;
  readonly version: string;
  readonly instance: string;
  readonly config: unknown;
  readonly inferLimit: InferLimit;
}

/** What an entry point resolves to: never a throw across the boundary. */
export type BootstrapOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: true } | BootstrapFailure;
export interface BootstrapFailure { readonly ok: false; readonly message: string; readonly code: string | undefined }

/** The entry points the host reaches through References. */
export interface BootstrapEntryPoints {
  load(identity: BootstrapIdentity): Promise<BootstrapOutcome<undefined>>;
  execute(requests: readonly unknown[], batch: number): Promise<BootstrapOutcome<unknown>>;
  /** execute() for the host's thread: returns at once; the outcome goes to the host's settled(batch, outcome). */
  executeInline(requests: readonly unknown[], batch: number): void;
  /** The host's answer to the inline ctx.infer call holding `ticket`. */
  answer(ticket: number, answer: InferAnswer): void;
  executeDecoupled(requests: readonly Record<string, unknown>[], batch: number): Promise<BootstrapOutcome<undefined>>;
  cancel(batch: number, index: number): void;
  finalize(): Promise<BootstrapOutcome<undefined>>;
  /** A full garbage collection, before the host judges whether a large answer fits under the memory limit. */
  collect(): void;
}

/** A host function as the isolate holds it: an isolated-vm Reference, with the calls the bootstrap makes. */
interface HostReference {
  apply(receiver: undefined, args: unknown[], options: object): Promise<unknown>;
  applyIgnored(receiver: undefined, args: unknown[], options: object): void;
  applySyncPromise(receiver: undefined, args: unknown[], options: object): unknown;
  applySync(receiver: undefined, args: unknown[], options: object): unknown;
}

/** The host's answer to a ctx.infer call, its tensors already moved into this isolate. */
interface InferAnswer {
  readonly outputs?: unknown;
  readonly parameters?: unknown;
  readonly error?: string;
  readonly code?: string;
}

/**
 * The host's answer to a step of ctx.inferStream: the stream's id (open), one response (next; `final` on the last),
 * the end (`done`), or an error.
 */
interface StreamAnswer extends InferAnswer {
  readonly stream?: number;
  readonly final?: boolean;
  readonly done?: boolean;
}

/** What ctx.inferStream returns: an async iterator of responses that is its own iterable, and can be cancelled. */
interface ResponseIterator {
  next(): Promise<IteratorResult<unknown, undefined>>;
  return(): Promise<IteratorResult<unknown, undefined>>;
  cancel(): Promise<void>;
  [Symbol.asyncIterator](): ResponseIterator;
}

interface InferLimit { readonly max: number; readonly code: string; readonly message: string }

/** The author's module as the compiled code fills it in. */
interface AuthorModule { exports: { default?: unknown } }

/** An instance of the author's model class; execute() is checked at load. */
interface AuthorModel {
  execute(requests: readonly unknown[], ctx: ModelContext): unknown;
  initialize?(ctx: ModelContext): unknown;
  finalize?(): unknown;
}

type LogLevel = 'info' | 'warn' | 'error';
type LogFunction = (...parts: unknown[]) => void;
interface ModelContext {
  readonly infer: (request: unknown) => Promise<unknown>;
  readonly inferStream: (request: unknown) => ResponseIterator;
  readonly log: Readonly<Record<LogLevel, LogFunction>>;
}

/** One decoupled batch still running. */
interface DecoupledState {
  readonly count: number;
  closed: boolean;
  readonly cancelled: Flags;
  readonly final: Flags;
}
type Flags = Record<number, boolean>;

/** An object made without a prototype, `{ __proto__: null, ... }`: no setter on Object.prototype meets its writes. */
type Bare<T> = T & { __proto__?: null };

/** A method taken off its prototype, called with its receiver first. */
type Uncurried<F> = F extends (...args: infer A) => infer R ? (self: unknown, ...args: A) => R : never;

function isolateBootstrap(
  hostInfer: HostReference, hostLog: HostReference, factory: (module: AuthorModule, exports: AuthorModule['exports']) => void,
  hostRespond: HostReference, settings: BootstrapSettings, hostInferInline: HostReference, hostSettled: HostReference,
  hostStream: HostReference, hostStreamInline: HostReference,
): BootstrapEntryPoints {
  // Intrinsics, captured before the author's code runs. uncurry(f)(self, ...args) is f.call(self, ...args)
  // without looking anything up at call time.
  const uncurry = Function.prototype.bind.bind(Function.prototype.call) as <F>(method: F) => Uncurried<F>;
  const ArrayIsArray = Array.isArray;
  const ArrayBufferIsView = ArrayBuffer.isView;
  const ObjectKeys = Object.keys;
  const ObjectFreeze = Object.freeze;
  const ObjectGetPrototypeOf = Object.getPrototypeOf;
  const ObjectSetPrototypeOf = Object.setPrototypeOf;
  const ArrayConstructor = Array;
  const ReflectDefineProperty = Reflect.defineProperty;
  const getOwnDescriptor = Object.getOwnPropertyDescriptor;
  const JSONStringify = JSON.stringify;
  const StringOf = String;
  const ErrorConstructor = Error;
  const BigIntOf = BigInt;
  const PromiseConstructor = Promise;
  const PromiseThen = uncurry(Promise.prototype.then);
  const AsyncIteratorSymbol: typeof Symbol.asyncIterator = Symbol.asyncIterator;
  const StringSlice = uncurry(String.prototype.slice);
  const BigIntToString = uncurry(BigInt.prototype.toString);
  const TypedArrayPrototype: object = ObjectGetPrototypeOf(Uint8Array.prototype);
  const typedArrayBuffer = uncurry(getOwnDescriptor(TypedArrayPrototype, 'buffer')!.get as () => ArrayBufferLike);
  const isTypedArray = (value: unknown): boolean => { try { typedArrayBuffer(value); return true; } catch { return false; } };
  const dataViewBuffer = uncurry(getOwnDescriptor(DataView.prototype, 'buffer')!.get as () => ArrayBufferLike);
  const arrayBufferByteLength = uncurry(getOwnDescriptor(ArrayBuffer.prototype, 'byteLength')!.get as () => number);

  const MAX_DEPTH = 64;
  const MAX_ERROR_CHARS = 4096;
  const MAX_CODE_CHARS = 128;
  const BIG = BigIntOf(2) ** BigIntOf(64);

  if (settings.allowWebAssembly !== true) delete (globalThis as { WebAssembly?: unknown }).WebAssembly;
  // V8's gc(), there because the host sets --expose-gc: kept for the host's collect(), out of the script's reach.
  // The property cannot be deleted (V8 makes it non-configurable), but it is writable.
  const collectGarbage = (globalThis as { gc?: () => void }).gc;
  if (collectGarbage !== undefined) (globalThis as { gc?: unknown }).gc = undefined;

  // ---- TextEncoder and TextDecoder, as the web has them (packages such as fast-png make them as they load), in plain
  // JavaScript: nothing reaches the host. UTF-8 both ways; the decoder also takes latin1 (ISO-8859-1) labels.
  const StringFromCharCode = String.fromCharCode;
  const ReflectApply = Reflect.apply;
  const StringCharCodeAt = uncurry(String.prototype.charCodeAt);
  const StringToLowerCase = uncurry(String.prototype.toLowerCase);
  const StringTrim = uncurry(String.prototype.trim);
  const TypeErrorConstructor = TypeError;
  const RangeErrorConstructor = RangeError;
  const Uint8ArrayConstructor = Uint8Array;
  const Uint16ArrayConstructor = Uint16Array;
  const typedArraySubarray = uncurry(Uint8Array.prototype.subarray);
  const typedArrayTag = uncurry(getOwnDescriptor(TypedArrayPrototype, Symbol.toStringTag)!.get as () => string | undefined);
  const typedArrayByteOffset = uncurry(getOwnDescriptor(TypedArrayPrototype, 'byteOffset')!.get as () => number);
  const typedArrayByteLength = uncurry(getOwnDescriptor(TypedArrayPrototype, 'byteLength')!.get as () => number);
  const dataViewByteOffset = uncurry(getOwnDescriptor(DataView.prototype, 'byteOffset')!.get as () => number);
  const dataViewByteLength = uncurry(getOwnDescriptor(DataView.prototype, 'byteLength')!.get as () => number);
  /** Code units turned into a string at once: few enough for one apply's arguments. */
  const CHUNK_UNITS = 8192;

  // The bytes a BufferSource holds, as a Uint8Array over the same memory.
  function bytesOf(input: unknown): Uint8Array {
    if (input === undefined) return new Uint8ArrayConstructor(0);
    if (isTypedArray(input)) {
      return new Uint8ArrayConstructor(typedArrayBuffer(input), typedArrayByteOffset(input), typedArrayByteLength(input));
    }
    if (ArrayBufferIsView(input)) return new Uint8ArrayConstructor(dataViewBuffer(input), dataViewByteOffset(input), dataViewByteLength(input));
    try {
      arrayBufferByteLength(input);
    } catch {
      throw new TypeErrorConstructor("TextDecoder.decode: the input must be an ArrayBuffer, a typed array or a DataView");
    }
    return new Uint8ArrayConstructor(input as ArrayBuffer);
  }

  // The code point starting at unit `i`; a lone surrogate is U+FFFD, as UTF-8 cannot hold it.
  function codePointAt(text: string, i: number): number {
    const unit = StringCharCodeAt(text, i);
    if (unit < 0xd800 || unit > 0xdfff) return unit;
    if (unit <= 0xdbff && i + 1 < text.length) {
      const next = StringCharCodeAt(text, i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) return 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
    }
    return 0xfffd;
  }
  const utf8Length = (codePoint: number): number => (codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4);
  function putUtf8(out: Uint8Array, at: number, codePoint: number): number {
    if (codePoint < 0x80) {
      out[at] = codePoint;
      return at + 1;
    }
    if (codePoint < 0x800) {
      out[at] = 0xc0 | (codePoint >> 6);
      out[at + 1] = 0x80 | (codePoint & 0x3f);
      return at + 2;
    }
    if (codePoint < 0x10000) {
      out[at] = 0xe0 | (codePoint >> 12);
      out[at + 1] = 0x80 | ((codePoint >> 6) & 0x3f);
      out[at + 2] = 0x80 | (codePoint & 0x3f);
      return at + 3;
    }
    out[at] = 0xf0 | (codePoint >> 18);
    out[at + 1] = 0x80 | ((codePoint >> 12) & 0x3f);
    out[at + 2] = 0x80 | ((codePoint >> 6) & 0x3f);
    out[at + 3] = 0x80 | (codePoint & 0x3f);
    return at + 4;
  }

  class TextEncoder {
    get encoding(): string {
      return 'utf-8';
    }

    encode(input: unknown = ''): Uint8Array {
      const text = StringOf(input);
      let length = 0;
      for (let i = 0; i < text.length; i++) {
        const codePoint = codePointAt(text, i);
        if (codePoint > 0xffff) i++;
        length += utf8Length(codePoint);
      }
      const out = new Uint8ArrayConstructor(length);
      let at = 0;
      for (let i = 0; i < text.length; i++) {
        const codePoint = codePointAt(text, i);
        if (codePoint > 0xffff) i++;
        at = putUtf8(out, at, codePoint);
      }
      return out;
    }

    // As much of `source` as fits whole into `destination`: how many UTF-16 units were read and bytes written.
    encodeInto(source: unknown, destination: Uint8Array): { read: number; written: number } {
      const text = StringOf(source);
      let tag: string | undefined;
      try { tag = typedArrayTag(destination); } catch { tag = undefined; }
      if (tag !== 'Uint8Array') throw new TypeErrorConstructor('TextEncoder.encodeInto: the destination must be a Uint8Array');
      const room = typedArrayByteLength(destination);
      let read = 0;
      let written = 0;
      while (read < text.length) {
        const codePoint = codePointAt(text, read);
        const size = utf8Length(codePoint);
        if (written + size > room) break;
        written = putUtf8(destination, written, codePoint);
        read += codePoint > 0xffff ? 2 : 1;
      }
      return { read, written };
    }
  }

  const UTF8_LABELS = ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8'];
  // The web maps these to windows-1252; here bytes 0x80 to 0x9F stay the code points of the same value, as in ISO-8859-1.
  const LATIN1_LABELS = ['ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819', 'iso-8859-1', 'iso-ir-100', 'iso8859-1',
    'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1', 'latin1', 'us-ascii', 'windows-1252', 'x-cp1252'];
  function listed(list: readonly string[], label: string): boolean {
    for (let i = 0; i < list.length; i++) if (list[i] === label) return true;
    return false;
  }

  class TextDecoder {
    readonly #utf8: boolean;
    readonly #fatal: boolean;
    readonly #ignoreBOM: boolean;
    // A UTF-8 sequence cut at the end of a streamed chunk: the bytes still needed, seen, the code point so far, and the range of the next byte.
    #needed = 0;
    #seen = 0;
    #codePoint = 0;
    #lower = 0x80;
    #upper = 0xbf;
    #bomSeen = false;

    constructor(label: unknown = 'utf-8', options?: { fatal?: unknown; ignoreBOM?: unknown }) {
      const name = StringToLowerCase(StringTrim(StringOf(label)));
      if (listed(UTF8_LABELS, name)) this.#utf8 = true;
      else if (listed(LATIN1_LABELS, name)) this.#utf8 = false;
      else throw new RangeErrorConstructor(`TextDecoder: the encoding '${cut(name, 64)}' is not supported here (utf-8 and latin1 are)`);
      this.#fatal = options !== undefined && options !== null && !!options.fatal;
      this.#ignoreBOM = options !== undefined && options !== null && !!options.ignoreBOM;
    }

    get encoding(): string {
      return this.#utf8 ? 'utf-8' : 'windows-1252';
    }

    get fatal(): boolean {
      return this.#fatal;
    }

    get ignoreBOM(): boolean {
      return this.#ignoreBOM;
    }

    decode(input?: unknown, options?: { stream?: unknown }): string {
      const bytes = bytesOf(input);
      const stream = options !== undefined && options !== null && !!options.stream;
      const length = typedArrayByteLength(bytes);
      let text = '';
      if (!this.#utf8) {
        for (let at = 0; at < length; at += CHUNK_UNITS) {
          text += ReflectApply(StringFromCharCode, undefined, typedArraySubarray(bytes, at, at + CHUNK_UNITS < length ? at + CHUNK_UNITS : length) as unknown as number[]);
        }
        return text;
      }
      const units = new Uint16ArrayConstructor(CHUNK_UNITS + 2);
      let count = 0;
      const flush = (): void => {
        text += ReflectApply(StringFromCharCode, undefined, typedArraySubarray(units, 0, count) as unknown as number[]);
        count = 0;
      };
      const emit = (codePoint: number): void => {
        if (count >= CHUNK_UNITS) flush();
        if (codePoint === 0xfeff && !this.#bomSeen && !this.#ignoreBOM) {
          this.#bomSeen = true;
          return;
        }
        this.#bomSeen = true;
        if (codePoint > 0xffff) {
          units[count++] = 0xd800 + ((codePoint - 0x10000) >> 10);
          units[count++] = 0xdc00 + ((codePoint - 0x10000) & 0x3ff);
        } else {
          units[count++] = codePoint;
        }
      };
      const invalid = (): void => {
        this.#needed = 0;
        this.#seen = 0;
        this.#codePoint = 0;
        this.#lower = 0x80;
        this.#upper = 0xbf;
        if (this.#fatal) {
          this.#bomSeen = false;
          throw new TypeErrorConstructor('TextDecoder.decode: the data is not valid utf-8');
        }
        emit(0xfffd);
      };
      // The WHATWG UTF-8 decoder: each maximal invalid part becomes one U+FFFD.
      for (let i = 0; i < length; i++) {
        const byte = bytes[i]!;
        if (this.#needed === 0) {
          if (byte <= 0x7f) {
            emit(byte);
          } else if (byte >= 0xc2 && byte <= 0xdf) {
            this.#needed = 1;
            this.#codePoint = byte & 0x1f;
          } else if (byte >= 0xe0 && byte <= 0xef) {
            if (byte === 0xe0) this.#lower = 0xa0;
            if (byte === 0xed) this.#upper = 0x9f;
            this.#needed = 2;
            this.#codePoint = byte & 0xf;
          } else if (byte >= 0xf0 && byte <= 0xf4) {
            if (byte === 0xf0) this.#lower = 0x90;
            if (byte === 0xf4) this.#upper = 0x8f;
            this.#needed = 3;
            this.#codePoint = byte & 0x7;
          } else {
            invalid();
          }
          continue;
        }
        if (byte < this.#lower || byte > this.#upper) {
          invalid();
          // The byte that broke the sequence starts the next one.
          i--;
          continue;
        }
        this.#lower = 0x80;
        this.#upper = 0xbf;
        this.#codePoint = (this.#codePoint << 6) | (byte & 0x3f);
        if (++this.#seen === this.#needed) {
          const codePoint = this.#codePoint;
          this.#needed = 0;
          this.#seen = 0;
          this.#codePoint = 0;
          emit(codePoint);
        }
      }
      if (!stream) {
        if (this.#needed !== 0) invalid();
        this.#bomSeen = false;
      }
      flush();
      return text;
    }
  }
  // Like the web's globals: writable, configurable, not enumerable.
  ReflectDefineProperty(globalThis, 'TextEncoder', { __proto__: null, value: TextEncoder, writable: true, configurable: true } as PropertyDescriptor);
  ReflectDefineProperty(globalThis, 'TextDecoder', { __proto__: null, value: TextDecoder, writable: true, configurable: true } as PropertyDescriptor);
  // ctx.infer calls in flight, by batch (0: initialize), and how many one may have; the host sets the limit at load.
  const callsInFlight: Bare<Partial<Record<number, number>>> = { __proto__: null };
  let inferLimit: Bare<InferLimit> = { __proto__: null, max: 0, code: '', message: '' };

  // One call (or open stream) of execute `batch` answered or ended.
  function releaseCall(batch: number): void {
    const count = callsInFlight[batch];
    if (count === undefined) return;
    if (count <= 1) delete callsInFlight[batch];
    else callsInFlight[batch] = count - 1;
  }

  function fail(message: string, code?: string): Error {
    const error = new ErrorConstructor(message);
    if (code !== undefined) ReflectDefineProperty(error, 'code', { __proto__: null, value: code, writable: true, configurable: true } as PropertyDescriptor);
    return error;
  }

  function cut(text: string, max: number): string {
    return text.length <= max ? text : StringSlice(text, 0, max) + '... [' + (text.length - max) + ' more characters cut]';
  }

  // What the host gets for anything the author's code threw: a message and a code, both bounded, never the value.
  function errorOf(err: unknown): Bare<BootstrapFailure> {
    let message: unknown;
    let code: string | undefined;
    try {
      if (err !== null && (typeof err === 'object' || typeof err === 'function')) {
        const m = (err as { message?: unknown }).message;
        message = typeof m === 'string' ? m : StringOf(err);
        const c = (err as { code?: unknown }).code;
        if (typeof c === 'string') code = cut(c, MAX_CODE_CHARS);
      } else {
        message = StringOf(err);
      }
    } catch {
      message = 'a thrown value that cannot be shown as text';
    }
    return { __proto__: null, ok: false, message: cut(typeof message === 'string' ? message : 'a thrown value that cannot be shown as text', MAX_ERROR_CHARS), code };
  }

  // ---- Values leaving the isolate: a bounded, plain copy made of the bootstrap's own objects.
  const limitMb = settings.maxTransferBytes / 1048576;
  const arrayBufferMaxByteLength = (() => {
    const getter = getOwnDescriptor(ArrayBuffer.prototype, 'maxByteLength');
    return getter && getter.get ? uncurry(getter.get as () => number) : arrayBufferByteLength;
  })();
  let budget = 0;
  // Why a value is not plain data, and where (filled in as the walk unwinds).
  const notPlainData = ObjectFreeze({ __proto__: null });
  let notPlainWhat = '';
  let notPlainAt = '';

  function charge(bytes: number): void {
    budget -= bytes;
    if (budget < 0) throw notPlainData;
  }
  function notPlain(what: string): typeof notPlainData {
    notPlainWhat = what;
    notPlainAt = '';
    return notPlainData;
  }
  // The memory under a typed array or DataView: the host copies the whole buffer, as large as it may grow.
  function bufferBytes(view: ArrayBufferView): number {
    let buffer;
    try { buffer = isTypedArray(view) ? typedArrayBuffer(view) : dataViewBuffer(view); } catch { throw notPlain('a view it cannot read'); }
    try { return arrayBufferMaxByteLength(buffer); } catch { throw notPlain('shared memory'); }
  }
  // One element of an array (key a number) or property of an object; on failure, prepends where it was.
  function element(value: unknown, depth: number, key: number | string): unknown {
    // Strings, the bulk of BYTES data, skip the call.
    if (typeof value === 'string') {
      budget -= 16 + value.length * 2;
      if (budget < 0) throw notPlainData;
      return value;
    }
    try {
      return plain(value, depth);
    } catch (err) {
      if (err === notPlainData && budget >= 0) notPlainAt = (typeof key === 'number' ? '[' + key + ']' : '.' + key) + notPlainAt;
      throw err;
    }
  }
  function plain(value: unknown, depth: number): unknown {
    switch (typeof value) {
      case 'string': charge(16 + value.length * 2); return value;
      case 'number': case 'boolean': case 'undefined': charge(8); return value;
      case 'bigint': charge(value < BIG && value > -BIG ? 16 : 16 + BigIntToString(value, 16).length); return value;
      case 'object': break;
      default: throw notPlain('a ' + typeof value);
    }
    if (value === null) { charge(8); return null; }
    if (depth >= MAX_DEPTH) throw notPlain('values nested deeper than ' + MAX_DEPTH + ' levels');
    if (ArrayBufferIsView(value)) { charge(64 + bufferBytes(value)); return value; }
    if (ArrayIsArray(value)) {
      const length: unknown = value.length;
      if (typeof length !== 'number' || !(length >= 0)) throw notPlain('an array without a length');
      charge(16 + length * 8);
      // No prototype: assigning an index can meet no setter the script put on Array.prototype or Object.prototype.
      const items: unknown[] = new ArrayConstructor(length);
      ObjectSetPrototypeOf(items, null);
      for (let i = 0; i < length; i++) items[i] = element(value[i], depth + 1, i);
      return items;
    }
    const keys = ObjectKeys(value);
    const count = keys.length;
    charge(16 + count * 8);
    const copy: Bare<Record<string, unknown>> = { __proto__: null };
    for (let i = 0; i < count; i++) {
      const key = keys[i]!;
      charge(16 + key.length * 2);
      copy[key] = element((value as Record<string, unknown>)[key], depth + 1, key);
    }
    return copy;
  }
  // A copy of the value that the host may take in full; 'what' names it in errors.
  function copyOut(value: unknown, what: string): unknown {
    budget = settings.maxTransferBytes;
    try {
      return plain(value, 0);
    } catch (err) {
      if (err !== notPlainData) throw err;
      if (budget < 0) {
        throw fail(what + ' holds more than the transfer limit of ' + limitMb + ' MB (parameters.max_transfer_mb): every value leaving the isolate ' +
          'is counted in full, each time it is referenced, and a larger one is refused rather than copied', 'TRANSFER_LIMIT');
      }
      throw fail(what + ' holds ' + notPlainWhat + ' at ' + (notPlainAt === '' ? 'its top' : cut(notPlainAt, 200)) + ', which could not be cloned: ' +
        'only plain data (objects, arrays, strings, numbers, booleans, bigints, typed arrays) can leave the isolate');
    }
  }

  // ---- ctx.infer: the host answers with a plain value whose tensor buffers move into this isolate.
  /*
   * ctx.infer hands the request over and returns; the host answers through
   * answer(ticket, ...), a call of its own into the isolate, as for inline
   * executes. The answer is copied in as that call's argument: one that
   * does not fit under the memory limit ends the isolate as any allocation
   * past it does. Copied in as a promise settled (isolated-vm's own way of
   * answering an async call), it aborted the whole process.
   */
  const inferOptions = { __proto__: null, arguments: { __proto__: null, copy: true } };
  const tickets: Bare<Partial<Record<number, (answer: InferAnswer) => void>>> = { __proto__: null };
  let lastTicket = 0;

  // Refused here past the limit, before the request is copied out: a flood of calls never reaches the host.
  async function infer(request: unknown, batch: number): Promise<unknown> {
    if (typeof request !== 'object' || request === null) throw fail('ctx.infer takes a request object: { model, inputs, outputs?, parameters?, version? }');
    const inFlight = callsInFlight[batch] || 0;
    if (inFlight >= inferLimit.max) throw fail(inferLimit.message, inferLimit.code);
    const copy = copyOut(request, 'the ctx.infer request');
    const ticket = ++lastTicket;
    const answered = new PromiseConstructor<InferAnswer>((resolve) => { tickets[ticket] = resolve; });
    callsInFlight[batch] = inFlight + 1;
    let answer: InferAnswer;
    try {
      hostInfer.applyIgnored(undefined, [copy, batch, ticket], inferOptions);
      answer = await answered;
    } finally {
      delete tickets[ticket];
      releaseCall(batch);
    }
    if (answer.error !== undefined) throw fail(answer.error, answer.code);
    return { outputs: answer.outputs, ...(answer.parameters ? { parameters: answer.parameters } : {}) };
  }

  // ---- Inline ctx.infer: handed over synchronously with a ticket; the host's answer(ticket, ...) settles it.
  const inferInlineOptions = { __proto__: null, arguments: { __proto__: null, copy: true } };
  const settledOptions = { __proto__: null, arguments: { __proto__: null, copy: true } };

  async function inferInline(request: unknown, batch: number): Promise<unknown> {
    if (typeof request !== 'object' || request === null) throw fail('ctx.infer takes a request object: { model, inputs, outputs?, parameters?, version? }');
    const inFlight = callsInFlight[batch] || 0;
    if (inFlight >= inferLimit.max) throw fail(inferLimit.message, inferLimit.code);
    const copy = copyOut(request, 'the ctx.infer request');
    const ticket = ++lastTicket;
    const answered = new PromiseConstructor<InferAnswer>((resolve) => { tickets[ticket] = resolve; });
    callsInFlight[batch] = inFlight + 1;
    let answer: InferAnswer;
    try {
      hostInferInline.applySync(undefined, [copy, batch, ticket], inferInlineOptions);
      answer = await answered;
    } finally {
      delete tickets[ticket];
      releaseCall(batch);
    }
    if (answer.error !== undefined) throw fail(answer.error, answer.code);
    return { outputs: answer.outputs, ...(answer.parameters ? { parameters: answer.parameters } : {}) };
  }

  // ---- ctx.inferStream: the host holds the stream; each step (open, next, close) is one call, inline or not.
  async function streamStep(operation: object, batch: number, inline: boolean): Promise<StreamAnswer> {
    const ticket = ++lastTicket;
    const answered = new PromiseConstructor<InferAnswer>((resolve) => { tickets[ticket] = resolve; });
    try {
      if (inline) hostStreamInline.applySync(undefined, [operation, batch, ticket], inferInlineOptions);
      else hostStream.applyIgnored(undefined, [operation, batch, ticket], inferOptions);
      return await answered as StreamAnswer;
    } finally {
      delete tickets[ticket];
    }
  }

  // Starts the call at once, as ctx.infer does; what goes wrong on the way surfaces at the first next().
  function inferStream(request: unknown, batch: number, inline: boolean): ResponseIterator {
    if (typeof request !== 'object' || request === null) throw fail('ctx.inferStream takes a request object: { model, inputs, outputs?, parameters?, version? }');
    const inFlight = callsInFlight[batch] || 0;
    if (inFlight >= inferLimit.max) throw fail(inferLimit.message, inferLimit.code);
    const copy = copyOut(request, 'the ctx.inferStream request');
    callsInFlight[batch] = inFlight + 1;
    let ended = false;
    let reading = false;
    let id: number | undefined;
    let openFailure: Error | undefined;
    function end(): void {
      if (ended) return;
      ended = true;
      releaseCall(batch);
    }
    const opened = PromiseThen(streamStep({ __proto__: null, kind: 'open', call: copy }, batch, inline), (answer: StreamAnswer) => {
      if (answer.error !== undefined) {
        openFailure = fail(answer.error, answer.code);
        end();
      } else {
        id = answer.stream;
        // Closed before it opened: the host closes it now.
        if (ended) void streamStep({ __proto__: null, kind: 'close', stream: id }, batch, inline);
      }
    }, (err: unknown) => {
      openFailure = fail(errorOf(err).message);
      end();
    }) as Promise<void>;
    const doneResult = (): IteratorResult<unknown, undefined> => ({ value: undefined, done: true });
    async function close(): Promise<void> {
      if (ended) return;
      end();
      await opened;
      if (id !== undefined) await streamStep({ __proto__: null, kind: 'close', stream: id }, batch, inline);
    }
    const iterator: ResponseIterator = {
      async next() {
        if (reading) throw fail('ctx.inferStream: next() was called again before the previous next() settled; await each one (for await does)');
        reading = true;
        try {
          await opened;
          if (openFailure !== undefined) {
            const failure = openFailure;
            openFailure = undefined;
            throw failure;
          }
          if (ended) return doneResult();
          const answer = await streamStep({ __proto__: null, kind: 'next', stream: id }, batch, inline);
          if (answer.error !== undefined) {
            end();
            throw fail(answer.error, answer.code);
          }
          if (answer.done === true) {
            end();
            return doneResult();
          }
          // The last response: the host has ended the stream, and the next next() answers done without asking.
          const final = answer.final === true;
          if (final) end();
          return { value: { outputs: answer.outputs, ...(answer.parameters ? { parameters: answer.parameters } : {}), final }, done: false };
        } finally {
          reading = false;
        }
      },
      async return() {
        await close();
        return doneResult();
      },
      cancel: close,
      [AsyncIteratorSymbol]() {
        return iterator;
      },
    };
    return ObjectFreeze(iterator);
  }

  // ---- ctx.log: each line cut to logLineMaxChars, at most logLinesPerExecute per execute(); the rest are counted.
  const logOptions = { __proto__: null, arguments: { __proto__: null, copy: true } };
  let logLines = 0;
  let logDropped = 0;

  function shown(part: unknown): string {
    if (typeof part === 'string') return part;
    try { return StringOf(JSONStringify(part)); } catch { try { return StringOf(part); } catch { return '[a value that cannot be shown]'; } }
  }
  // batch: the execute whose ctx.log this is (0: initialize), so the host can name its requests.
  function logAt(level: LogLevel, batch: number): LogFunction {
    return function log(...parts) {
      if (logLines >= settings.logLinesPerExecute) { logDropped++; return; }
      logLines++;
      const max = settings.logLineMaxChars;
      let text = '';
      let whole = true;
      for (let i = 0; i < parts.length; i++) {
        if (text.length >= max) { whole = false; break; }
        const piece = shown(parts[i]);
        if (i > 0) text += ' ';
        // Sliced before it is joined: the line never holds more than the cap.
        text += piece.length > max ? StringSlice(piece, 0, max) : piece;
        if (piece.length > max) whole = false;
      }
      if (text.length > max) { text = StringSlice(text, 0, max); whole = false; }
      if (!whole) text += '... [cut: ctx.log keeps ' + max + ' characters of a line (parameters.log_line_max_chars)]';
      hostLog.applyIgnored(undefined, [level, text, batch], logOptions);
    };
  }
  function logFunctions(batch: number): Readonly<Record<LogLevel, LogFunction>> {
    return ObjectFreeze({ info: logAt('info', batch), warn: logAt('warn', batch), error: logAt('error', batch) });
  }

  function startLogBudget(): void {
    logLines = 0;
    logDropped = 0;
  }
  function reportDroppedLines(): void {
    if (logDropped === 0) return;
    hostLog.applyIgnored(undefined, ['warn', logDropped + ' more log line(s) dropped: ctx.log keeps at most ' + settings.logLinesPerExecute +
      ' lines per execute() (parameters.log_lines_per_execute)'], logOptions);
    logDropped = 0;
  }

  // ---- Decoupled requests: send() and isCancelled(), bound to their batch and position.
  const respondOptions = { __proto__: null, arguments: { __proto__: null, copy: true } };
  // Decoupled batches still running, by the host's batch number.
  const running: Bare<Partial<Record<number, DecoupledState>>> = { __proto__: null };

  function attachSender(request: object, batch: number, index: number, state: DecoupledState): void {
    const where = state.count > 1 ? ' (request ' + (index + 1) + ' of ' + state.count + ')' : '';
    function send(response: unknown, options?: unknown): boolean {
      if (options !== undefined && (typeof options !== 'object' || options === null || ArrayIsArray(options))) {
        throw fail('send(response, options)' + where + ': options is { final?: boolean }');
      }
      const final = options !== undefined && (options as { final?: unknown }).final === true;
      if (state.closed) {
        throw fail('send()' + where + ' after execute() returned: a decoupled model sends every response before its execute() resolves, so await the work that sends them');
      }
      if (state.final[index]) throw fail('send()' + where + ' after the final response of this request');
      if (response !== undefined && response !== null && (typeof response !== 'object' || ArrayIsArray(response))) {
        throw fail('send()' + where + ' takes a response object ({ outputs } or { error }), got ' + (ArrayIsArray(response) ? 'an array' : typeof response));
      }
      if ((response === undefined || response === null) && !final) {
        throw fail('send()' + where + ' needs a response ({ outputs } or { error }), or send(undefined, { final: true }) to close the request without one');
      }
      if (state.cancelled[index]) {
        if (final) state.final[index] = true;
        return false;
      }
      let copy = null;
      if (response !== undefined && response !== null) {
        try {
          copy = copyOut(response, 'the response');
        } catch (err) {
          throw fail('send()' + where + ': the response cannot leave the isolate (' + (err as Error).message + '); a response is plain data: ' +
            '{ outputs: { NAME: { datatype?, shape, data } } } or { error: \'...\' }', (err as { code?: string }).code);
        }
      }
      if (final) state.final[index] = true;
      // Blocks until the host has taken it, and while the request's stream has no room.
      const taken = hostRespond.applySyncPromise(undefined, [batch, index, copy, final], respondOptions) === true;
      if (!taken) state.cancelled[index] = true;
      return taken;
    }
    function isCancelled(): boolean {
      return state.cancelled[index]!;
    }
    ReflectDefineProperty(request, 'send', { __proto__: null, value: send, writable: true, configurable: true } as PropertyDescriptor);
    ReflectDefineProperty(request, 'isCancelled', { __proto__: null, value: isCancelled, writable: true, configurable: true } as PropertyDescriptor);
  }

  function flags(count: number): Flags {
    const list: Bare<Flags> = { __proto__: null };
    for (let i = 0; i < count; i++) list[i] = false;
    return list;
  }

  let model: AuthorModel | undefined;
  let identityOf: Bare<Omit<BootstrapIdentity, 'inferLimit'>>;

  // The ctx of one execute() (0: initialize()): its ctx.infer calls are that execute's, for their limit, chain and cancellation.
  function contextFor(batch: number, inline = false): ModelContext {
    const call = inline ? inferInline : infer;
    return ObjectFreeze({
      ...identityOf, infer: (request: unknown) => call(request, batch), inferStream: (request: unknown) => inferStream(request, batch, inline),
      log: logFunctions(batch),
    });
  }

  async function executeOutcome(requests: readonly unknown[], batch: number, inline: boolean): Promise<Bare<BootstrapOutcome<unknown>>> {
    startLogBudget();
    try {
      const responses = await model!.execute(requests, contextFor(batch, inline));
      if (!ArrayIsArray(responses)) throw fail('execute() must return an array with one response per request, got ' + (responses === null ? 'null' : typeof responses));
      if (responses.length !== requests.length) {
        throw fail('execute() returned ' + responses.length + ' response(s) for ' + requests.length + ' request(s); return one per request, in order');
      }
      return { __proto__: null, ok: true, value: copyOut(responses, 'execute()\'s answer') };
    } catch (err) {
      return errorOf(err);
    } finally {
      // Streams it left open are the host's to cancel; none of its calls counts any more.
      delete callsInFlight[batch];
      reportDroppedLines();
    }
  }

  async function settleInline(requests: readonly unknown[], batch: number): Promise<void> {
    const outcome = await executeOutcome(requests, batch, true);
    try {
      hostSettled.applySync(undefined, [batch, outcome], settledOptions);
    } catch {
      // The host is stopping this isolate (a limit): nobody waits on the outcome any more.
    }
  }

  return ObjectFreeze({
    __proto__: null,
    async load(identity) {
      startLogBudget();
      try {
        const module: AuthorModule = { exports: {} };
        factory(module, module.exports);
        const Model = module.exports && module.exports.default;
        if (typeof Model !== 'function') {
          throw fail('model.ts must export a class as its default export: export default class { async execute(requests, ctx) { ... } }');
        }
        inferLimit = identity.inferLimit;
        identityOf = { __proto__: null, name: identity.name, version: identity.version, instance: identity.instance, config: identity.config };
        model = new (Model as new () => AuthorModel)();
        if (typeof model.execute !== 'function') throw fail('the default export of model.ts has no execute(requests, ctx) method');
        if (typeof model.initialize === 'function') await model.initialize(contextFor(0));
        return { __proto__: null, ok: true };
      } catch (err) {
        return errorOf(err);
      } finally {
        reportDroppedLines();
      }
    },
    execute(requests, batch) {
      return executeOutcome(requests, batch, false);
    },
    executeInline(requests, batch) {
      void settleInline(requests, batch);
    },
    answer(ticket, answer) {
      const resolve = tickets[ticket];
      if (resolve !== undefined) resolve(answer);
    },
    async executeDecoupled(requests, batch) {
      startLogBudget();
      const count = requests.length;
      const state: Bare<DecoupledState> = { __proto__: null, count, closed: false, cancelled: flags(count), final: flags(count) };
      running[batch] = state;
      try {
        for (let i = 0; i < count; i++) attachSender(requests[i]!, batch, i, state);
        await model!.execute(requests, contextFor(batch));
        return { __proto__: null, ok: true };
      } catch (err) {
        return errorOf(err);
      } finally {
        state.closed = true;
        delete running[batch];
        delete callsInFlight[batch];
        reportDroppedLines();
      }
    },
    cancel(batch, index) {
      const state = running[batch];
      if (state !== undefined) state.cancelled[index] = true;
    },
    async finalize() {
      try {
        if (model && typeof model.finalize === 'function') await model.finalize();
        return { __proto__: null, ok: true };
      } catch (err) {
        return errorOf(err);
      }
    },
    collect() {
      if (typeof collectGarbage === 'function') collectGarbage();
    },
  } satisfies Bare<BootstrapEntryPoints>);
}
