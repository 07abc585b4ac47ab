/**
 * What reading a model's config needs to know of the backends a server
 * has: which names and platforms exist, and what each one's models default
 * to. BackendRegistry is the catalogue a server runs with; this narrow view
 * keeps config reading free of the backend contract itself.
 */

/** What a backend declares about the configs it serves, beside loading them. */
export interface BackendTraits {
  /** The name a config gives as `backend: "<name>"`; unique among a server's backends. */
  readonly name: string;
  /**
   * Triton platform names that mean this backend (`platform: "onnxruntime_onnx"`
   * for onnxruntime). The first is the platform its models report when their
   * config names only the backend. Default: none, and such models report ''.
   */
  readonly platforms?: readonly string[];
  /** The file each version folder holds when the config sets no default_model_filename. Default: ''. */
  readonly defaultModelFilename?: string;
  /**
   * Whether its models may be decoupled (model_transaction_policy { decoupled: true }),
   * sending any number of responses per request through ExecuteRequest.send.
   * Default false: every request gets exactly one answer.
   */
  readonly decoupled?: boolean;
}

export interface BackendCatalog {
  /** The backend of a config that names neither backend nor platform; undefined: such a config is refused. */
  readonly defaultBackend: string | undefined;
  /** The backend called `name`, if the server has it. */
  get(name: string): BackendTraits | undefined;
  /** The backend a platform name means, if the server has one. */
  backendOfPlatform(platform: string): string | undefined;
  /** Every backend, in the order given, for messages. */
  list(): readonly BackendTraits[];
}
