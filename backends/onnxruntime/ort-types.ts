/** KServe datatypes and the element type names of onnxruntime-node, both ways. */
import type { DataType } from '../../engine/tensor.ts';

export type OrtType =
  | 'float32' | 'float64' | 'float16' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32'
  | 'int64' | 'uint64' | 'bool' | 'string';

const TO_ORT: Readonly<Partial<Record<DataType, OrtType>>> = {
  FP32: 'float32', FP64: 'float64', FP16: 'float16', INT8: 'int8', UINT8: 'uint8', INT16: 'int16', UINT16: 'uint16',
  INT32: 'int32', UINT32: 'uint32', INT64: 'int64', UINT64: 'uint64', BOOL: 'bool', BYTES: 'string',
};

const FROM_ORT: Readonly<Record<string, DataType>> = Object.fromEntries(
  Object.entries(TO_ORT).map(([k, v]) => [v, k as DataType]),
);

/** undefined for BF16, which the Node binding cannot carry. */
export function toOrtType(datatype: DataType): OrtType | undefined {
  return TO_ORT[datatype];
}

export function fromOrtType(type: string): DataType | undefined {
  return FROM_ORT[type];
}
