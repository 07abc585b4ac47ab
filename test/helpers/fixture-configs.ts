/** Config texts shared by several test files, written the way Triton's docs write them. */

/** Inputs and outputs of generator/models.ts addSubModel('INT32', 16), without the batch dim. */
export const ADD_SUB_IO = `
input [
  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
`;

/** A complete add_sub config with max_batch_size 8, plus any extra lines. */
export function addSubConfig(name = 'add_sub', extra = ''): string {
  return `name: "${name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n${ADD_SUB_IO}${extra}`;
}

/** The config of generator/models.ts mismatchModel(): inputs of free length, so a request can make the run fail. */
export const MISMATCH_CONFIG = `name: "mismatch"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4
input [ { name: "A" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "B" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "C" data_type: TYPE_FP32 dims: [ -1 ] } ]
`;
