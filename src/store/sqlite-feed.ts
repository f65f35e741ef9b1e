/**
 * Commits handed between the processes that share one SQLite file and can message each other: the
 * workers of a CONVMARK_WORKERS cluster, through the primary, which passes each worker's feed
 * messages on to the other workers (src/cluster/primary.ts).
 *
 * Without this, a process learns of another's commits by polling the file (`PRAGMA data_version`)
 * and reading the feed rows, which hold each conversation's latest change only: two changes of one
 * conversation between two polls arrive as one. With it, each commit's changes arrive as the
 * writing process wrote them, in a fraction of a millisecond. The poll stays, for processes that
 * are not peers (convmark import, a second server on the file) and for messages that come late: the
 * reader takes a peer's commit only when it follows exactly on what it has delivered, and reads the
 * file otherwise (src/store/sqlite-store.ts, "The shared reader").
 *
 * Workers publish only while some other worker has a subscriber (it says so every second while it
 * has one), so writes cost nothing extra when nobody watches elsewhere.
 */
import cluster from "node:cluster";
import type { ConvType, ConversationRecord } from "../domain/conversation.js";
import type { Change } from "./store.js";

/** One commit of a process on the file: the store-wide seq before it and its changes, in seq order. */
export interface FeedCommit {
  readonly after: bigint;
  readonly changes: readonly Change[];
}

/** The processes on the same file this store exchanges commits with. */
export interface FeedPeers {
  /** Tells the peers about a commit of this process (a no-op while no peer has a subscriber). */
  publish(commit: FeedCommit): void;
  /** While listening, this process has a subscriber: peers publish to it; returns the end of it. */
  listen(onCommit: (commit: FeedCommit) => void): () => void;
}

const COMMIT = "convmark:feed-commit";
const INTEREST = "convmark:feed-interest";
const INTEREST_EVERY_MS = 1000;
const INTEREST_LASTS_MS = 3500;

/** A feed message of a worker, which the cluster primary passes on to every other worker. */
export function isFeedMessage(m: unknown): boolean {
  const type = (m as { type?: unknown } | null)?.type;
  return type === COMMIT || type === INTEREST;
}

// A change on the wire (JSON: bigints as decimal strings).
type WireChange = [
  owner: string,
  type: number,
  conversationId: string,
  marks: string,
  customMark: string,
  labels: readonly string[],
  settings: ConversationRecord["settings"],
  version: string,
  updateTimeMs: number,
  position: string,
  vendorConversationId: string | null,
  deleted: 0 | 1,
  seq: string,
];

export function changeToWire(c: Change): WireChange {
  const r = c.record;
  return [
    r.key.owner,
    r.key.type,
    r.key.conversationId,
    String(r.marks),
    r.customMark,
    r.labels,
    r.settings,
    String(r.version),
    r.updateTimeMs,
    String(r.position),
    r.vendorConversationId ?? null,
    c.deleted ? 1 : 0,
    String(c.seq),
  ];
}

export function changeFromWire(w: WireChange): Change {
  const [owner, type, conversationId, marks, customMark, labels, settings, version, updateTimeMs, position, vendorConversationId, deleted, seq] = w;
  const record: ConversationRecord = {
    key: { owner, type: type as ConvType, conversationId },
    marks: BigInt(marks),
    customMark,
    labels: [...labels],
    settings: { ...settings },
    version: BigInt(version),
    updateTimeMs,
    position: BigInt(position),
    ...(vendorConversationId !== null ? { vendorConversationId } : {}),
  };
  return { record, deleted: deleted === 1, seq: BigInt(seq) };
}

interface Channel {
  send(message: unknown): void;
  onMessage(handler: (message: unknown) => void): void;
}

/**
 * Peers over a message channel that reaches every other process on `file` (a cluster worker's IPC
 * channel to the primary: `clusterFeedPeers`), with `now` for the interest expiry.
 */
export function channelFeedPeers(file: string, channel: Channel, self: string, now: () => number = Date.now): FeedPeers {
  /** Peers with a subscriber: id -> when they last said so. */
  const interested = new Map<string, number>();
  let onCommit: ((c: FeedCommit) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  channel.onMessage((m) => {
    const msg = m as { type?: unknown; file?: unknown; from?: unknown; on?: unknown; after?: unknown; changes?: unknown };
    if (msg?.file !== file || msg.from === self || typeof msg.from !== "string") return;
    if (msg.type === INTEREST) {
      if (msg.on === true) interested.set(msg.from, now());
      else interested.delete(msg.from);
    } else if (msg.type === COMMIT && onCommit && typeof msg.after === "string" && Array.isArray(msg.changes)) {
      onCommit({ after: BigInt(msg.after), changes: (msg.changes as WireChange[]).map(changeFromWire) });
    }
  });
  const announce = (on: boolean) => channel.send({ type: INTEREST, file, from: self, on });
  return {
    publish(commit) {
      if (interested.size === 0) return;
      const t = now();
      for (const [id, at] of interested) if (t - at > INTEREST_LASTS_MS) interested.delete(id);
      if (interested.size === 0) return;
      channel.send({ type: COMMIT, file, from: self, after: String(commit.after), changes: commit.changes.map(changeToWire) });
    },
    listen(handler) {
      onCommit = handler;
      announce(true);
      timer = setInterval(() => announce(true), INTEREST_EVERY_MS);
      timer.unref();
      return () => {
        if (onCommit !== handler) return;
        onCommit = undefined;
        clearInterval(timer);
        timer = undefined;
        announce(false);
      };
    },
  };
}

/** The peers of a cluster worker: the other workers, through the primary (undefined outside a worker). */
export function clusterFeedPeers(file: string): FeedPeers | undefined {
  if (!cluster.isWorker || !process.send) return undefined;
  const send = process.send.bind(process);
  return channelFeedPeers(
    file,
    {
      send: (m) => {
        if (process.connected) send(m);
      },
      onMessage: (h) => process.on("message", h),
    },
    String(process.pid),
  );
}
