/**
 * How a planned request reaches the server: one unary infer call, or a
 * request on a gRPC stream. Streams come from a pool where each stream
 * carries one request at a time, so every virtual client has a stream of
 * its own, as perf_analyzer gives each of its contexts one.
 */
import type { InferenceClient, InferStream } from '../index.ts';
import type { Sender } from './load.ts';

export interface Target {
  readonly model: string;
  readonly modelVersion: string | undefined;
}

function inferOptions(target: Target, parameters: Readonly<Record<string, number | boolean>> | undefined) {
  return {
    ...(target.modelVersion === undefined ? {} : { modelVersion: target.modelVersion }),
    ...(parameters === undefined ? {} : { parameters }),
  };
}

export function unarySender(client: InferenceClient, target: Target): Sender {
  return async (request) => {
    await client.infer(target.model, request.payload.inputs, inferOptions(target, request.parameters));
  };
}

interface Lane {
  readonly stream: InferStream;
  waiting: { resolve(): void; reject(error: unknown): void } | undefined;
  closed: boolean;
}

export interface StreamingSender {
  readonly send: Sender;
  /** Half-closes every stream. */
  close(): void;
}

export function streamingSender(client: InferenceClient, target: Target): StreamingSender {
  const idle: Lane[] = [];
  const lanes = new Set<Lane>();

  const open = (): Lane => {
    const lane: Lane = { stream: client.streamInfer(), waiting: undefined, closed: false };
    lanes.add(lane);
    const settle = (error: unknown): void => {
      const waiting = lane.waiting;
      lane.waiting = undefined;
      if (error === undefined) waiting?.resolve();
      else waiting?.reject(error);
    };
    void (async () => {
      try {
        for await (const message of lane.stream) settle(message.error);
        settle(new Error('the stream ended before the server answered'));
      } catch (error) {
        settle(error);
      } finally {
        lane.closed = true;
        lanes.delete(lane);
      }
    })();
    return lane;
  };

  const send: Sender = (request) =>
    new Promise<void>((resolve, reject) => {
      let lane = idle.pop();
      while (lane?.closed) lane = idle.pop();
      const chosen = lane ?? open();
      chosen.waiting = {
        resolve() {
          idle.push(chosen);
          resolve();
        },
        reject(error) {
          if (!chosen.closed) idle.push(chosen);
          reject(error);
        },
      };
      try {
        chosen.stream.send(target.model, request.payload.inputs, inferOptions(target, request.parameters));
      } catch (error) {
        chosen.waiting = undefined;
        chosen.closed = true;
        reject(error);
      }
    });

  return {
    send,
    close() {
      for (const lane of lanes) lane.stream.end();
    },
  };
}
