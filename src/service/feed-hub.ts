/**
 * Fans the store's one stream of new changes out to every open Watch: one store subscription per
 * process however many watchers there are, each change handed to the watchers of its owner (and to
 * every-owner watchers). Each watcher's backlog is bounded; one that falls further behind is
 * flagged overflowed and holds nothing, so a slow client cannot grow the server's memory.
 */
import type { Change, MarkStore } from "../store/store.js";

export interface FeedHubOptions {
  /** Changes a watcher may have waiting before it is ended with RESOURCE_EXHAUSTED. */
  readonly maxBacklog: number;
}

export type WaitResult = "data" | "timeout" | "ended";

export interface Watcher {
  /** Changes queued since the last take(), in commit order. */
  take(): Change[];
  /** True when the backlog limit was passed (the queue was dropped); cleared by resetOverflow(). */
  readonly overflowed: boolean;
  resetOverflow(): void;
  /** Resolves when changes are waiting, the timeout passes, the hub closes or the signal aborts. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<WaitResult>;
  close(): void;
}

export interface FeedHub {
  /** A new watcher of one owner (or of every owner); undefined after close(). */
  open(owner: string | undefined): Watcher | undefined;
  /** Ends every watcher (their streams finish cleanly) and refuses new ones. */
  close(): void;
  readonly watchers: number;
}

class HubWatcher implements Watcher {
  queue: Change[] = [];
  overflowed = false;
  ended = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly owner: string | undefined,
    private readonly maxBacklog: number,
    private readonly onClose: (w: HubWatcher) => void,
  ) {}

  push(c: Change): void {
    if (this.overflowed) return;
    if (this.queue.length >= this.maxBacklog) {
      this.overflowed = true;
      this.queue = [];
    } else this.queue.push(c);
    this.notify();
  }

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  take(): Change[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  resetOverflow(): void {
    this.overflowed = false;
  }

  wait(timeoutMs: number, signal: AbortSignal): Promise<WaitResult> {
    if (this.ended || signal.aborted) return Promise.resolve("ended");
    if (this.queue.length > 0 || this.overflowed) return Promise.resolve("data");
    return new Promise((resolve) => {
      const done = (r: WaitResult) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.wake = undefined;
        resolve(r);
      };
      const onAbort = () => done("ended");
      const timer = setTimeout(() => done("timeout"), timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.wake = () => done(this.ended ? "ended" : "data");
    });
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    this.notify();
    this.onClose(this);
  }
}

export function createFeedHub(store: MarkStore, opts: FeedHubOptions): FeedHub {
  const byOwner = new Map<string, Set<HubWatcher>>();
  const everyOwner = new Set<HubWatcher>();
  let count = 0;
  let unsubscribe: (() => void) | undefined;
  let closed = false;

  const deliver = (changes: readonly Change[]) => {
    for (const c of changes) {
      const ws = byOwner.get(c.record.key.owner);
      if (ws) for (const w of ws) w.push(c);
      for (const w of everyOwner) w.push(c);
    }
  };

  const remove = (w: HubWatcher) => {
    if (w.owner === undefined) everyOwner.delete(w);
    else {
      const ws = byOwner.get(w.owner);
      ws?.delete(w);
      if (ws?.size === 0) byOwner.delete(w.owner);
    }
    count--;
    if (count === 0 && unsubscribe) {
      unsubscribe();
      unsubscribe = undefined;
    }
  };

  return {
    open(owner) {
      if (closed) return undefined;
      const w = new HubWatcher(owner, opts.maxBacklog, remove);
      if (owner === undefined) everyOwner.add(w);
      else {
        let ws = byOwner.get(owner);
        if (!ws) byOwner.set(owner, (ws = new Set()));
        ws.add(w);
      }
      count++;
      unsubscribe ??= store.subscribe(deliver);
      return w;
    },
    close() {
      closed = true;
      for (const ws of [...byOwner.values()]) for (const w of [...ws]) w.close();
      for (const w of [...everyOwner]) w.close();
    },
    get watchers() {
      return count;
    },
  };
}
