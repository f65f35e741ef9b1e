/**
 * Opaque feed cursors (SyncConversations, WatchConversations): the position (one owner's feed) or
 * store-wide seq (every owner's) of the last change a client has, bound to the feed it came from.
 * The value is the store's: a small integer on SQLite; on MongoDB's every-owner feed a wider one
 * (a change stream point, or an initial-scan point holding an owner ID; src/store/mongo-feed.ts),
 * hence up to 2500 digits. Which store a value belongs to the store itself checks.
 */
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

function feedId(owner: string | undefined): string {
  if (owner === undefined) return "all";
  return createHash("sha256").update(owner).digest("base64url").slice(0, 16);
}

export function encodeFeedCursor(owner: string | undefined, value: bigint): string {
  return feedCursorEncoder(owner)(value);
}

/** encodeFeedCursor for one feed, its id computed once (a Watch encodes a cursor per response). */
export function feedCursorEncoder(owner: string | undefined): (value: bigint) => string {
  const prefix = `f1.${feedId(owner)}.`;
  return (value) => Buffer.from(prefix + value).toString("base64url");
}

/** The value inside a cursor of this feed; INVALID_ARGUMENT for anything else. */
export function decodeFeedCursor(cursor: string, owner: string | undefined): bigint {
  const raw = Buffer.from(cursor, "base64url");
  // Buffer's base64url decoder is lenient (skips junk); only the exact spelling we issued is accepted.
  const m = raw.toString("base64url") === cursor ? /^f1\.(all|[A-Za-z0-9_-]{16})\.(\d{1,2500})$/.exec(raw.toString()) : null;
  if (!m || !m[1] || !m[2]) throw new ConnectError("cursor is not a cursor this service issued", Code.InvalidArgument);
  if (m[1] !== feedId(owner)) {
    throw new ConnectError(
      owner === undefined ? "cursor belongs to one owner's feed, not the feed of every owner" : "cursor was issued for another owner's feed",
      Code.InvalidArgument,
    );
  }
  return BigInt(m[2]);
}
