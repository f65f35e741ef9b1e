/**
 * Fans the store's one stream of new changes out to every open Watch: one store subscription per
 * process however many watchers there are, each batch handed to the listeners of its owners (and to
 * every-owner listeners) with one call per listener per batch. The hub keeps no queue: what a
 * watcher does with a batch (send it, hold it while its client is slow, give up) is the watcher's
 * (watch-session.ts), so an idle watcher costs one map entry here.
 */
import type { Change, MarkStore } from "../store/store.js";

export interface FeedHubOptions {
  /** Changes a watcher may hold unsent before it is ended with RESOURCE_EXHAUSTED. */
  readonly maxBacklog: number;
}

/** What the hub calls; synchronously, from the store's reader. */
export interface FeedListener {
  /** Newly committed changes of the listener's owner (or of every owner), in commit order. */
  onChanges(changes: readonly Change[]): void;
  /** The hub closed (graceful shutdown): end cleanly. */
  onHubClose(): void;
}

export interface FeedHub {
  /** Registers a listener of one owner (or every owner); returns its removal, undefined after close(). */
  open(owner: string | undefined, listener: FeedListener): (() => void) | undefined;
  /** Ends every listener (their streams finish cleanly) and refuses new ones. */
  close(): void;
  readonly watchers: number;
  readonly maxBacklog: number;
}

export function createFeedHub(store: MarkStore, opts: FeedHubOptions): FeedHub {
  // One listener per owner is the common case: keep it bare, an array only when there are more.
  const byOwner = new Map<string, FeedListener | FeedListener[]>();
  const everyOwner = new Set<FeedListener>();
  let count = 0;
  let unsubscribe: (() => void) | undefined;
  let closed = false;

  const deliver = (changes: readonly Change[]) => {
    if (everyOwner.size > 0) for (const l of [...everyOwner]) l.onChanges(changes);
    if (byOwner.size === 0) return;
    if (changes.length === 1) {
      const c = changes[0]!;
      const ls = byOwner.get(c.record.key.owner);
      if (ls === undefined) return;
      if (Array.isArray(ls)) for (const l of [...ls]) l.onChanges(changes);
      else ls.onChanges(changes);
      return;
    }
    // Group by owner so each listener gets its batch in one call, in commit order.
    const batches = new Map<string, Change[]>();
    for (const c of changes) {
      const owner = c.record.key.owner;
      if (!byOwner.has(owner)) continue;
      const b = batches.get(owner);
      if (b) b.push(c);
      else batches.set(owner, [c]);
    }
    for (const [owner, batch] of batches) {
      const ls = byOwner.get(owner);
      if (ls === undefined) continue;
      if (Array.isArray(ls)) for (const l of [...ls]) l.onChanges(batch);
      else ls.onChanges(batch);
    }
  };

  const remove = (owner: string | undefined, l: FeedListener) => {
    if (owner === undefined) {
      if (!everyOwner.delete(l)) return;
    } else {
      const ls = byOwner.get(owner);
      if (ls === l) byOwner.delete(owner);
      else if (Array.isArray(ls) && ls.includes(l)) {
        const rest = ls.filter((x) => x !== l);
        byOwner.set(owner, rest.length === 1 ? rest[0]! : rest);
      } else return;
    }
    count--;
    if (count === 0 && unsubscribe) {
      unsubscribe();
      unsubscribe = undefined;
    }
  };

  return {
    open(owner, listener) {
      if (closed) return undefined;
      if (owner === undefined) everyOwner.add(listener);
      else {
        const ls = byOwner.get(owner);
        byOwner.set(owner, ls === undefined ? listener : Array.isArray(ls) ? [...ls, listener] : [ls, listener]);
      }
      count++;
      unsubscribe ??= store.subscribe(deliver);
      let removed = false;
      return () => {
        if (removed) return;
        removed = true;
        remove(owner, listener);
      };
    },
    close() {
      closed = true;
      const all: FeedListener[] = [...everyOwner];
      for (const ls of byOwner.values()) all.push(...(Array.isArray(ls) ? ls : [ls]));
      everyOwner.clear();
      byOwner.clear();
      count = 0;
      unsubscribe?.();
      unsubscribe = undefined;
      for (const l of all) l.onHubClose();
    },
    get watchers() {
      return count;
    },
    maxBacklog: opts.maxBacklog,
  };
}
