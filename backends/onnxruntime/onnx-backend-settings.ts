/**
 * The onnxruntime backend's --backend-config settings, as Triton's
 * onnxruntime backend names them. intra_op_thread_count and
 * inter_op_thread_count become the session thread counts of every model
 * whose config parameters do not set their own. enable-global-threadpool is
 * checked and has no effect: onnxruntime-node has no process-wide thread
 * pool, each instance's session runs in a worker of its own.
 * default-max-batch-size is read by config completion, not here.
 */

export interface OnnxBackendSettings {
  /** Session intra-op threads for models whose parameters do not say; 0 lets ONNX Runtime choose. */
  readonly intraOpThreadCount?: number;
  /** Session inter-op threads for models whose parameters do not say; 0 lets ONNX Runtime choose. */
  readonly interOpThreadCount?: number;
}

/** Settings read here; each changes how sessions start. */
const THREAD_SETTINGS = { intra_op_thread_count: 'intraOpThreadCount', inter_op_thread_count: 'interOpThreadCount' } as const;
/** Triton's settings that are checked and accepted, with no effect on this build. */
export const ONNX_SETTINGS_WITHOUT_EFFECT = ['enable-global-threadpool'] as const;
/** The largest thread count taken: far above any machine, small enough that a typo is caught. */
export const MAX_ONNX_THREAD_COUNT = 1024;

/**
 * Reads the onnxruntime entries of --backend-config. Returns the settings
 * and the entries (as `<setting>=<value>`) that have no effect; throws
 * naming the setting when a value is malformed. Settings it does not know
 * are left to the caller (default-max-batch-size, or listed without effect).
 */
export function readOnnxBackendSettings(entries: ReadonlyArray<readonly [setting: string, value: string]>): {
  settings: OnnxBackendSettings;
  withoutEffect: string[];
  unknown: string[];
} {
  const settings: { intraOpThreadCount?: number; interOpThreadCount?: number } = {};
  const withoutEffect: string[] = [];
  const unknown: string[] = [];
  for (const [setting, value] of entries) {
    if (setting in THREAD_SETTINGS) {
      const n = /^\d+$/.test(value) ? Number(value) : NaN;
      if (!(n <= MAX_ONNX_THREAD_COUNT)) {
        throw new Error(`onnxruntime,${setting}=${value}: expected a thread count from 0 to ${MAX_ONNX_THREAD_COUNT} (0 lets ONNX Runtime choose)`);
      }
      settings[THREAD_SETTINGS[setting as keyof typeof THREAD_SETTINGS]] = n;
    } else if ((ONNX_SETTINGS_WITHOUT_EFFECT as readonly string[]).includes(setting)) {
      if (!['0', '1', 'true', 'false', 'on', 'off', 'yes', 'no'].includes(value.toLowerCase())) {
        throw new Error(`onnxruntime,${setting}=${value}: expected true or false (1 or 0)`);
      }
      withoutEffect.push(`${setting}=${value}`);
    } else {
      unknown.push(`${setting}=${value}`);
    }
  }
  return { settings, withoutEffect, unknown };
}
