/**
 * Load drivers: a closed loop over a pool of @grpc/grpc-js channels (gRPC on h2c), autocannon for
 * HTTP/1.1 (Connect JSON and the vendor REST routes), and the same closed loop for in-process calls.
 * Every driver keeps a fixed number of requests in flight for a fixed time.
 */
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import autocannon from "autocannon";
import { LatencyLog } from "./stats.js";

/** `--name=value` (or `--name`, "true") arguments of the small bench scripts, by name. */
export function flags(argv: readonly string[]): Map<string, string> {
  return new Map(
    argv.map((a) => {
      const [name, value] = splitArg(a.replace(/^--/, ""));
      return [name, value ?? "true"];
    }),
  );
}

/** `name=value` as [name, value], the value everything after the first "=" (it may hold "=": --flags="--x=1"); no "=": no value. */
export function splitArg(a: string): [string, string | undefined] {
  const eq = a.indexOf("=");
  return eq < 0 ? [a, undefined] : [a.slice(0, eq), a.slice(eq + 1)];
}

/** Node flags given as one option value ("--a=1 --b"), as a list. */
export const nodeFlagList = (value: string): string[] => value.split(" ").filter((f) => f !== "");

/** What one driver run measured (CPU is added by the caller, which knows the server). */
export interface RawSlice {
  readonly requests: number;
  readonly units: number;
  readonly errors: number;
  readonly seconds: number;
  readonly latencies: LatencyLog;
  readonly firstError?: string;
}

/** The outcome of one call: how many units (requests or updates) it completed, or why it failed. */
export type CallOutcome = { readonly units: number } | { readonly error: string };

/**
 * Runs `call` from `concurrency` workers until `seconds` have passed; each worker waits for its
 * answer before sending the next request (closed loop), so `concurrency` requests are in flight.
 */
export async function closedLoop(concurrency: number, seconds: number, call: (seq: number) => Promise<CallOutcome>): Promise<RawSlice> {
  const deadline = performance.now() + seconds * 1000;
  let seq = 0;
  return closedLoopUntil(concurrency, () => performance.now() >= deadline, () => call(seq++));
}

/** A few independent HTTP/2 connections (grpc-js would otherwise share one subchannel). */
export class GrpcPool {
  private readonly clients: grpc.Client[];
  private next = 0;

  constructor(target: string, size: number) {
    this.clients = Array.from(
      { length: size },
      (_, i) =>
        new grpc.Client(target, grpc.credentials.createInsecure(), {
          "grpc.use_local_subchannel_pool": 1,
          "grpc.max_receive_message_length": -1,
          "grpc.max_send_message_length": -1,
          // Distinct options keep the channels apart even if the pool were shared.
          "grpc.primary_user_agent": `convmark-bench/${i}`,
        }),
    );
  }

  /** Waits until every channel is connected. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.clients.map(
        (c) => new Promise<void>((resolve, reject) => c.waitForReady(deadline, (err) => (err ? reject(err) : resolve()))),
      ),
    );
  }

  /** One unary call with already serialized request bytes; resolves with the raw response bytes. */
  unary(path: string, request: Buffer): Promise<Buffer> {
    const client = this.clients[this.next++ % this.clients.length]!;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest<Buffer, Buffer>(
        path,
        (b) => b,
        (b) => b,
        request,
        (err, res) => (err ? reject(new Error(`${path}: ${err.code} ${err.details}`)) : resolve(res!)),
      );
    });
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

export interface HttpLoad {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  readonly request: autocannon.RequestSpec;
  /** Counts responses with HTTP 2xx whose body fails it as errors. */
  readonly verify?: (body: string) => boolean;
  /** How many units one successful request completes. Default 1. */
  readonly unitsPerRequest?: number;
  /** Requests per second over all connections (autocannon's overallRate); absent: as fast as answered. */
  readonly overallRate?: number;
}

/** HTTP/1.1 keep-alive load with autocannon, `connections` requests in flight (no pipelining). */
export function httpLoad(opts: HttpLoad): Promise<RawSlice> {
  return new Promise((resolve, reject) => {
    const latencies = new LatencyLog();
    let ok2xx = 0;
    let responses = 0;
    let firstError: string | undefined;
    const start = performance.now();
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        pipelining: 1,
        duration: opts.seconds,
        ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
        // autocannon notices the end of \`duration\` only at its next sample tick (default every
        // second, so a 1.5 s slice ran 2 s): sample often, so a slice lasts what it says.
        sampleInt: 100,
        timeout: 30,
        requests: [opts.request],
        ...(opts.verify
          ? {
              verifyBody: (body: string) => {
                const good = opts.verify!(body);
                if (!good) firstError ??= `unexpected response body: ${body.slice(0, 300)}`;
                return good;
              },
            }
          : {}),
      },
      (err, result) => {
        if (err) {
          reject(err);
          return;
        }
        const seconds = (performance.now() - start) / 1000;
        const bad = result.non2xx + result.errors + result.timeouts + result.mismatches;
        if (result.non2xx > 0 && !firstError) {
          firstError = `HTTP status counts ${JSON.stringify(result.statusCodeStats)}`;
        }
        if ((result.errors > 0 || result.timeouts > 0) && !firstError) {
          firstError = `${result.errors} connection errors, ${result.timeouts} timeouts`;
        }
        const good = Math.max(0, ok2xx - result.mismatches);
        resolve({
          requests: responses,
          units: good * (opts.unitsPerRequest ?? 1),
          errors: bad,
          seconds,
          latencies,
          ...(firstError ? { firstError } : {}),
        });
      },
    );
    instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      responses++;
      if (statusCode >= 200 && statusCode < 300) ok2xx++;
      latencies.add(responseTime);
    });
  });
}

/** Runs every task once, `concurrency` at a time (a fixed amount of work rather than a fixed time). */
export async function drainTasks(concurrency: number, tasks: readonly (() => Promise<CallOutcome>)[]): Promise<RawSlice> {
  let next = 0;
  return closedLoopUntil(concurrency, () => next >= tasks.length, () => tasks[next++]!());
}

async function closedLoopUntil(concurrency: number, done: () => boolean, call: () => Promise<CallOutcome>): Promise<RawSlice> {
  const latencies = new LatencyLog();
  let requests = 0;
  let units = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const worker = async () => {
    while (!done()) {
      const t0 = performance.now();
      let out: CallOutcome;
      try {
        out = await call();
      } catch (e) {
        out = { error: e instanceof Error ? e.message : String(e) };
      }
      latencies.add(performance.now() - t0);
      requests++;
      if ("error" in out) {
        errors++;
        firstError ??= out.error;
      } else {
        units += out.units;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { requests, units, errors, seconds: (performance.now() - start) / 1000, latencies, ...(firstError ? { firstError } : {}) };
}
