/**
 * The control tensors the sequence batcher adds to each request of a batch
 * (Triton's control_input): START, END and READY as the model's configured
 * false/true values, CORRID as the sequence's correlation ID. Each holds one
 * value per request, shaped [1, 1] when the model batches ([1] when it does
 * not), so a batch of n requests joins them into [n, 1].
 *
 * A filler row (a direct-strategy slot with nothing to run) is "not ready":
 * START, END and READY false, CORRID 0 (or ""), as Triton's null requests.
 */
import type { SequenceControlSpec } from '../config/compiled-model-config.ts';
import { bytesTensor } from '../bytes-tensor.ts';
import { serverError } from '../errors.ts';
import { bytesOf, type Tensor } from '../tensor.ts';
import { describeCorrelationId, type CorrelationId } from './correlation-id.ts';

export interface ControlSignals {
  readonly start: boolean;
  readonly end: boolean;
  readonly ready: boolean;
  /** undefined for a filler row. */
  readonly id: CorrelationId | undefined;
}

export const NOT_READY: ControlSignals = { start: false, end: false, ready: false, id: undefined };

export class ControlTensors {
  /** The model inputs these tensors feed. */
  readonly names: ReadonlySet<string>;
  private readonly shape: readonly number[];

  constructor(private readonly controls: readonly SequenceControlSpec[], batched: boolean) {
    this.names = new Set(controls.map((c) => c.inputName));
    this.shape = batched ? [1, 1] : [1];
  }

  /**
   * Refuses a string ID for a model that takes the ID as an integer, before
   * the request is queued: there is no number to give it. (Integer IDs too
   * large for a 32-bit CORRID keep their low bits, as Triton copies them.)
   */
  checkId(model: string, id: CorrelationId): void {
    if (id.kind !== 'string') return;
    const corrid = this.controls.find((c) => c.kind === 'CORRID');
    if (corrid && corrid.datatype !== 'BYTES') {
      throw serverError('SEQUENCE_CORRID_TYPE', { model, sequence: describeCorrelationId(id), input: corrid.inputName, datatype: corrid.datatype });
    }
  }

  /** One fresh tensor per configured control, for one row of a batch. */
  tensorsFor(signals: ControlSignals): Tensor[] {
    return this.controls.map((control): Tensor => {
      const name = control.inputName;
      if (control.kind === 'CORRID') return this.correlationTensor(name, control.datatype, signals.id);
      const on = control.kind === 'START' ? signals.start : control.kind === 'END' ? signals.end : signals.ready;
      const value = on ? control.trueValue : control.falseValue;
      const raw = control.datatype === 'INT32' ? bytesOf(Int32Array.of(value))
        : control.datatype === 'FP32' ? bytesOf(Float32Array.of(value))
        : Uint8Array.of(value ? 1 : 0);
      return { name, datatype: control.datatype, shape: this.shape, raw };
    });
  }

  private correlationTensor(name: string, datatype: Extract<SequenceControlSpec, { kind: 'CORRID' }>['datatype'], id: CorrelationId | undefined): Tensor {
    if (datatype === 'BYTES') {
      return bytesTensor(name, this.shape, [id ? describeCorrelationId(id) : '']);
    }
    const value = id?.kind === 'uint64' ? id.value : 0n;
    let raw: Uint8Array;
    switch (datatype) {
      case 'UINT64': raw = bytesOf(BigUint64Array.of(value)); break;
      case 'INT64': raw = bytesOf(BigInt64Array.of(BigInt.asIntN(64, value))); break;
      case 'UINT32': raw = bytesOf(Uint32Array.of(Number(BigInt.asUintN(32, value)))); break;
      case 'INT32': raw = bytesOf(Int32Array.of(Number(BigInt.asIntN(32, value)))); break;
    }
    return { name, datatype, shape: this.shape, raw };
  }
}
