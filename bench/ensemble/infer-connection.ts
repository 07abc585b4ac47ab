/**
 * One keep-alive TCP connection that sends binary-tensor infer requests and
 * hands back each response's tensor bytes. The client chaining three models
 * needs the bytes of one answer to build the next request, which the load
 * generator's fixed-request clients do not give; the ensemble's single
 * request goes through the same connection, so both HTTP modes pay the same
 * client cost per POST. Like the load generator's raw client, it does just
 * enough HTTP/1.1 (status line, Content-Length): on a 2-core machine the
 * client shares the CPU with the server.
 */
import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n');

export interface InferAnswer {
  readonly status: number;
  /** The whole response body: JSON header, then binary outputs. */
  readonly body: Buffer;
  /** Inference-Header-Content-Length: where the binary outputs start; undefined when absent (a JSON-only answer). */
  readonly jsonLength: number | undefined;
}

/** A complete response at the start of `data`, or undefined while bytes are missing. Throws on what it cannot read. */
export function parseResponse(data: Buffer): { readonly answer: InferAnswer; readonly byteLength: number } | undefined {
  const headerEnd = data.indexOf(HEADER_END);
  if (headerEnd < 0) return undefined;
  const head = data.toString('latin1', 0, headerEnd);
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!status) throw new Error(`not an HTTP/1.x response: '${head.slice(0, 40)}'`);
  const contentLength = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (!contentLength) throw new Error(`response without content-length (status ${status[1]})`);
  const bodyStart = headerEnd + HEADER_END.byteLength;
  const byteLength = bodyStart + Number(contentLength[1]);
  if (data.byteLength < byteLength) return undefined;
  const jsonLength = /\r\ninference-header-content-length:\s*(\d+)/i.exec(head);
  return {
    answer: {
      status: Number(status[1]),
      body: data.subarray(bodyStart, byteLength),
      jsonLength: jsonLength ? Number(jsonLength[1]) : undefined,
    },
    byteLength,
  };
}

export interface RequestShape {
  readonly port: number;
  readonly model: string;
  readonly input: string;
  readonly output: string;
  readonly shape: readonly number[];
  /** Bytes of the FP32 input tensor that will follow the head. */
  readonly tensorBytes: number;
}

/**
 * Everything of a binary-tensor infer request except the input's bytes:
 * HTTP head and JSON header, asking for the output in binary. Built once;
 * a request is the head followed by the tensor.
 */
export function requestHead(r: RequestShape): Buffer {
  const json = Buffer.from(JSON.stringify({
    inputs: [{ name: r.input, shape: r.shape, datatype: 'FP32', parameters: { binary_data_size: r.tensorBytes } }],
    outputs: [{ name: r.output, parameters: { binary_data: true } }],
  }));
  const http = [`POST /v2/models/${r.model}/infer HTTP/1.1`, `host: 127.0.0.1:${r.port}`, 'connection: keep-alive',
    'content-type: application/octet-stream', `inference-header-content-length: ${json.byteLength}`,
    `content-length: ${json.byteLength + r.tensorBytes}`, '', ''].join('\r\n');
  return Buffer.concat([Buffer.from(http, 'latin1'), json]);
}

export class InferConnection {
  private buffered: Buffer | undefined;
  private waiting: { resolve(answer: InferAnswer): void; reject(err: Error): void } | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  static open(port: number): Promise<InferConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new InferConnection(socket));
      });
    });
  }

  /** Sends head + tensor and resolves with the answer. One request at a time per connection. */
  post(head: Buffer, tensor: Uint8Array): Promise<InferAnswer> {
    if (this.waiting) return Promise.reject(new Error('a request is already in flight on this connection'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(tensor);
      this.socket.uncork();
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    const data = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    let parsed: ReturnType<typeof parseResponse>;
    try {
      parsed = parseResponse(data);
      if (parsed && parsed.byteLength !== data.byteLength) throw new Error('more bytes than one response: the server answered something not asked for');
    } catch (err) {
      this.socket.destroy();
      this.fail(err as Error);
      return;
    }
    if (!parsed) {
      this.buffered = data;
      return;
    }
    this.buffered = undefined;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve(parsed.answer);
  }

  private fail(err: Error): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(err);
  }
}
