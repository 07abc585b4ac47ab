/**
 * The lifecycle of one sequence, as an xstate actor:
 *
 *   waiting --SLOT--> active.busy <--REQUEST-- active.idle --(max_sequence_idle)--> expired
 *                     active.busy --DRAINED--> active.idle
 *   waiting | active --CLOSE--> ending --DRAINED--> ended
 *   any state that is not final --STOP--> stopped
 *
 * waiting: in the backlog, no batch slot yet. active: holds a slot; busy
 * while it has requests queued or running, idle otherwise. ending: no more
 * requests join (its END request arrived, or a new START took its
 * correlation ID); the ones it has still run, in order. The idle timer is a
 * delayed transition, so it runs on whatever clock the actor is given and
 * is cancelled by leaving `idle`. The batcher reacts when the actor reaches
 * a final state: it frees the slot and drops the state.
 */
import { createActor, setup, type Actor } from 'xstate';
import type { Clock } from '../scheduling/clock.ts';

export type SequenceEvent =
  | { readonly type: 'SLOT' }
  | { readonly type: 'REQUEST' }
  | { readonly type: 'DRAINED' }
  | { readonly type: 'CLOSE' }
  | { readonly type: 'STOP' };

export type SequenceEnd = 'ended' | 'expired' | 'stopped';

export const sequenceMachine = setup({
  types: {
    context: {} as { readonly idleMs: number },
    input: {} as { readonly idleMs: number },
    events: {} as SequenceEvent,
  },
  delays: {
    maxSequenceIdle: ({ context }) => context.idleMs,
  },
}).createMachine({
  id: 'sequence',
  context: ({ input }) => ({ idleMs: input.idleMs }),
  initial: 'waiting',
  states: {
    waiting: {
      on: { SLOT: 'active', CLOSE: 'ending' },
    },
    active: {
      initial: 'busy',
      states: {
        busy: { on: { DRAINED: 'idle' } },
        idle: {
          on: { REQUEST: 'busy' },
          after: { maxSequenceIdle: '#sequence.expired' },
        },
      },
      on: { CLOSE: 'ending' },
    },
    ending: {
      on: { DRAINED: 'ended' },
    },
    ended: { type: 'final' },
    expired: { type: 'final' },
    stopped: { type: 'final' },
  },
  on: { STOP: '.stopped' },
});

/** The actor of one sequence; `onEnd` hears once which final state it reached. */
export class SequenceActor {
  private readonly actor: Actor<typeof sequenceMachine>;

  constructor(options: { readonly idleMs: number; readonly clock: Clock; readonly onEnd: (end: SequenceEnd) => void }) {
    const { clock } = options;
    this.actor = createActor(sequenceMachine, {
      input: { idleMs: options.idleMs },
      clock: { setTimeout: (fn, ms) => clock.setTimer(fn, ms), clearTimeout: (handle) => clock.clearTimer(handle) },
    });
    this.actor.subscribe((snapshot) => {
      if (snapshot.status === 'done') options.onEnd(snapshot.value as SequenceEnd);
    });
    this.actor.start();
  }

  /** The state as a dotted path: 'waiting', 'active.idle', 'ended'... */
  get state(): string {
    const value = this.actor.getSnapshot().value;
    return typeof value === 'string' ? value : Object.entries(value).map(([k, v]) => `${k}.${String(v)}`).join('');
  }

  /** Whether the sequence still takes events (it has not reached a final state). */
  get running(): boolean {
    return this.actor.getSnapshot().status === 'active';
  }

  send(event: SequenceEvent): void {
    if (this.running) this.actor.send(event);
  }
}
