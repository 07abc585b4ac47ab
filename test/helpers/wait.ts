/**
 * Waiting on an event in a test, always with a time limit. A poller here
 * stops at its deadline (it never keeps the test file alive after failing),
 * and its failure says what was awaited and shows what was seen so far.
 */

/** At most this much of the output seen so far goes into a failure message. */
const OUTPUT_TAIL_CHARS = 4000;

/** The last part of `text`, marked as cut when it is longer than the tail kept. */
export function tail(text: string, chars = OUTPUT_TAIL_CHARS): string {
  return text.length <= chars ? text : `[... ${text.length - chars} characters before]\n${text.slice(-chars)}`;
}

/**
 * Calls `probe` between event-loop turns until it answers something other
 * than undefined or false, and resolves with that answer. Rejects after
 * `ms` naming `what`, with `seen()` (the output so far) in the message.
 * `probe` may be async (one call at a time) and may throw to fail at once;
 * `intervalMs` 0 checks again after each event-loop turn.
 */
export async function pollFor<T>(what: string, ms: number, probe: () => T | undefined | false | Promise<T | undefined | false>,
  seen?: () => string, intervalMs = 2): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const answer = await probe();
    if (answer !== undefined && answer !== false) return answer;
    if (performance.now() > deadline) {
      const output = seen?.();
      throw new Error(`timed out after ${ms} ms waiting for ${what}${output === undefined ? '' : `; output so far:\n${tail(output)}`}`);
    }
    await new Promise((resolve) => (intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve)));
  }
}

/** Resolves with the first line of `log` containing `text`; fails after `ms` showing the lines logged so far. */
export function waitForLogLine(log: { readonly lines: readonly string[] }, text: string, ms: number): Promise<string> {
  return pollFor(`a log line containing '${text}'`, ms, () => log.lines.find((l) => l.includes(text)), () => log.lines.join('\n'));
}
