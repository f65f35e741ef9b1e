/**
 * One WatchConversations stream, whatever carries it (the lean gRPC route, watch-grpc.ts, or
 * connect-node for Connect and gRPC-Web): catch up from the cursor in store pages, then send each
 * batch of live changes as it commits, heartbeats in between, and end on shutdown or when the
 * client falls too far behind. The rules live here once; a transport supplies a WatchSink.
 *
 * Per watcher this keeps the owner, the cursor, the changes not yet sent and one timer.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { FeedUnsupportedError, type Change, type ChangePage, type MarkStore } from "../store/store.js";
import type { FeedHub, FeedListener } from "./feed-hub.js";

/** Changes read per store query while a Watch catches up. */
export const CATCH_UP_PAGE = 500;

/** Where a transport writes the stream. */
export interface WatchSink {
  /** True when a response can be written now without queueing behind bytes the client has not read. */
  ready(): boolean;
  /** Writes one response: the changes (none: a heartbeat) and the feed value the cursor carries after them. */
  send(changes: readonly Change[], cursor: bigint): void;
  /** Ends the stream, cleanly (no error: the client reconnects with its cursor) or with the error. Called once. */
  end(error?: ConnectError): void;
}

export interface WatchSpec {
  readonly store: MarkStore;
  readonly feed: FeedHub | undefined;
  /** undefined: every owner's feed. */
  readonly owner: string | undefined;
  /** The feed value of the client's cursor; undefined: from now. */
  readonly after: bigint | undefined;
  readonly heartbeatMs: number;
}

/** A running Watch: the transport calls drained() when its client reads again, close() when it went away. */
export interface WatchHandle {
  drained(): void;
  close(): void;
}

/** The value of a change in its feed: position in one owner's, seq in every owner's. */
export const feedValue = (owner: string | undefined, c: Change): bigint => (owner === undefined ? c.seq : c.record.position);

/** Store feed calls, with the every-owner feed a store does not keep mapped to UNIMPLEMENTED. */
export async function feedCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof FeedUnsupportedError) throw new ConnectError(e.message, Code.Unimplemented);
    throw e;
  }
}

export function readFeed(store: MarkStore, owner: string | undefined, after: bigint, limit: number): Promise<ChangePage> {
  return feedCall(() => store.changes({ ...(owner !== undefined ? { owner } : {}), after, limit }));
}

const SHUTTING_DOWN = "the server is shutting down; reconnect with your cursor";
const TOO_OLD =
  "the cursor is older than the retained tombstones (or unknown to this store): re-list the conversations, then watch from the cursor SyncConversations returns";
const TOO_SLOW = "the client fell too far behind the live feed; reconnect with the last cursor it received";

class Session implements FeedListener, WatchHandle {
  private cur = 0n;
  private live = false;
  /** Live changes not sent yet (they arrived while catching up, or while the client was not reading). */
  private pending: Change[] | undefined;
  /** While catching up: live changes were dropped for the backlog limit; the store has them, read on. */
  private overflowed = false;
  private ended = false;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onDrain: (() => void) | undefined;

  constructor(
    private readonly spec: WatchSpec,
    private readonly sink: WatchSink,
    private readonly maxBacklog: number,
  ) {}

  start(): void {
    // Subscribe before reading anything, so a change committing meanwhile is held, not lost; what
    // the catch-up already sent is skipped by its value.
    this.unsubscribe = this.spec.feed?.open(this.spec.owner, this);
    if (!this.unsubscribe) {
      this.finish(new ConnectError(SHUTTING_DOWN, Code.Unavailable));
      return;
    }
    this.catchUp().catch((e: unknown) => this.finish(ConnectError.from(e)));
  }

  private async catchUp(): Promise<void> {
    const { store, owner } = this.spec;
    let cur = this.spec.after ?? (await feedCall(() => store.head(owner)));
    this.cur = cur;
    let sent = false;
    for (;;) {
      this.overflowed = false;
      const page = await readFeed(store, owner, cur, CATCH_UP_PAGE);
      if (this.ended) return;
      if (page.reset) throw new ConnectError(TOO_OLD, Code.FailedPrecondition);
      if (page.changes.length > 0) {
        cur = page.last;
        this.cur = cur;
        await this.writable();
        if (this.ended) return;
        this.sink.send(page.changes, cur);
        sent = true;
        // Stay in catch-up until the client has taken the page: live changes meanwhile are held
        // (or, past the backlog limit, dropped and read from the store on the next round).
        await this.writable();
        if (this.ended) return;
      }
      // Done when the store has nothing more and no live change was dropped meanwhile.
      if (!page.hasMore && !this.overflowed) break;
    }
    // Live: tell the client where it stands at once, then every change as it commits.
    this.live = true;
    if (!sent) this.sink.send([], cur);
    this.timer = setTimeout(() => this.heartbeat(), this.spec.heartbeatMs);
    this.timer.unref();
    this.flush();
  }

  private writable(): Promise<void> {
    if (this.sink.ready()) return Promise.resolve();
    return new Promise((resolve) => (this.onDrain = resolve));
  }

  onChanges(changes: readonly Change[]): void {
    if (this.ended || this.overflowed) return;
    const p = (this.pending ??= []);
    for (const c of changes) p.push(c);
    if (this.live && this.flush()) return;
    if (p.length > this.maxBacklog) {
      this.pending = undefined;
      if (this.live) this.finish(new ConnectError(TOO_SLOW, Code.ResourceExhausted));
      else this.overflowed = true;
      return;
    }
  }

  onHubClose(): void {
    this.finish();
  }

  drained(): void {
    const d = this.onDrain;
    this.onDrain = undefined;
    d?.();
    this.flush();
  }

  /** Sends what is pending, if the client is reading; true when something was sent. */
  private flush(): boolean {
    if (!this.live || this.ended || this.pending === undefined || !this.sink.ready()) return false;
    const p = this.pending;
    this.pending = undefined;
    const owner = this.spec.owner;
    const cur = this.cur;
    const fresh = feedValue(owner, p[0]!) > cur ? p : p.filter((c) => feedValue(owner, c) > cur);
    if (fresh.length === 0) return false;
    this.cur = feedValue(owner, fresh.at(-1)!);
    this.sink.send(fresh, this.cur);
    this.timer?.refresh();
    return true;
  }

  private heartbeat(): void {
    if (this.ended) return;
    // A client that is not reading gets no heartbeat: it would only wait behind the unread bytes.
    if (!this.flush() && this.sink.ready()) this.sink.send([], this.cur);
    this.timer?.refresh();
  }

  private finish(error?: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    this.pending = undefined;
    this.release();
    this.sink.end(error);
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.pending = undefined;
    this.release();
  }

  private release(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    const d = this.onDrain;
    this.onDrain = undefined;
    d?.();
  }
}

/** Starts a Watch writing to `sink`; the first thing it does may be sink.end (e.g. UNAVAILABLE after shutdown). */
export function startWatch(spec: WatchSpec, sink: WatchSink): WatchHandle {
  const s = new Session(spec, sink, spec.feed?.maxBacklog ?? 0);
  s.start();
  return s;
}

/** A Watch as an async iterable of (changes, cursor) pairs: for transports that pull (connect-node). */
export async function* watchIterable(spec: WatchSpec, signal: AbortSignal): AsyncGenerator<{ changes: readonly Change[]; cursor: bigint }> {
  const queue: { changes: readonly Change[]; cursor: bigint }[] = [];
  let ended: { error?: ConnectError } | undefined;
  let waiting: (() => void) | undefined;
  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  const handle = startWatch(spec, {
    // Ready while the consumer waits for the next response (it has written the previous one).
    ready: () => waiting !== undefined && queue.length === 0,
    send(changes, cursor) {
      queue.push({ changes, cursor });
      wake();
    },
    end(error) {
      ended = error ? { error } : {};
      wake();
    },
  });
  const onAbort = () => {
    handle.close();
    ended ??= {};
    wake();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (ended) {
        if (ended.error) throw ended.error;
        return;
      }
      await new Promise<void>((resolve) => {
        waiting = resolve;
        handle.drained();
        if (queue.length > 0 || ended) wake();
      });
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    handle.close();
  }
}
