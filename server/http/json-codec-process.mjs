// A JSON codec process (see json-codec-pool.ts): runs one task at a time from
// the server and answers with its result or its failure. Its heap is capped
// by --max-old-space-size, so a body that needs more ends this process, not
// the server. The sources are TypeScript, so tsx's loader is registered here;
// messages that arrive while it loads wait in `pending`.
import { register } from 'tsx/esm/api';

/** @typedef {{ task: import('./json-codec-task.ts').JsonCodecTask }} Message */
/** @type {Message[]} */
const pending = [];
/** @type {((message: Message) => void) | undefined} */
let handle;
process.on('message', (/** @type {Message} */ message) => (handle ? handle(message) : pending.push(message)));
process.on('disconnect', () => process.exit(0));

register();
const { codecFailure, runJsonCodecTask } = await import('./json-codec-task.ts');
const { inPieces, PieceJoiner } = await import('./json-codec-pieces.ts');
const send = /** @type {(reply: unknown) => void} */ (process.send?.bind(process));
const joiner = new PieceJoiner();
handle = (message) => {
  if (joiner.take(message)) return;
  const task = joiner.join(message.task);
  let reply;
  try {
    reply = { ok: true, result: runJsonCodecTask(task) };
  } catch (err) {
    reply = { ok: false, failure: codecFailure(err) };
  }
  if (task.kind === 'json-object') return send(reply);
  const split = inPieces(reply);
  for (const piece of split.pieces) send(piece);
  send(split.message);
};
for (const message of pending.splice(0)) handle(message);
