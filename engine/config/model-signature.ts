/** The inputs and outputs a backend reads from the model file itself, used to check and complete the config. */
import type { DataType } from '../tensor.ts';

export interface SignatureTensor {
  readonly name: string;
  /** undefined when the model's element type has no KServe datatype. */
  readonly datatype: DataType | undefined;
  /** The element type as the model file names it, for error messages. */
  readonly modelType: string;
  /** -1 for a dynamic (symbolic) dimension. */
  readonly shape: readonly number[];
}

export interface ModelSignature {
  /** The model file the signature was read from, for error messages. */
  readonly file: string;
  readonly inputs: readonly SignatureTensor[];
  readonly outputs: readonly SignatureTensor[];
}
