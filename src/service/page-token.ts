/** Opaque list cursors: the position to continue below, bound to the owner and filter it was made for. */
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ListFilter } from "../store/store.js";

function fingerprint(owner: string, f: ListFilter): string {
  const base = [owner, String(f.marksAll), String(f.marksAny), String(f.marksNone), f.type ?? 0, [...f.labelsAny].sort(), f.pinned ?? null];
  // Appended only when set, so tokens issued before the vendor ID filter existed stay valid.
  const vendorIds = f.vendorConversationIds?.length ? [[...f.vendorConversationIds].sort()] : [];
  const canonical = JSON.stringify([...base, ...vendorIds]);
  return createHash("sha256").update(canonical).digest("base64url").slice(0, 16);
}

export function encodePageToken(owner: string, f: ListFilter, before: bigint): string {
  return Buffer.from(`v1.${before}.${fingerprint(owner, f)}`).toString("base64url");
}

export function decodePageToken(token: string, owner: string, f: ListFilter): bigint {
  const raw = Buffer.from(token, "base64url");
  // Buffer's base64url decoder is lenient (skips junk); only the exact spelling we issued is accepted.
  const m = raw.toString("base64url") === token ? /^v1\.(\d{1,20})\.([A-Za-z0-9_-]{16})$/.exec(raw.toString()) : null;
  if (!m || !m[1] || !m[2]) throw new ConnectError("page_token is not a token this service issued", Code.InvalidArgument);
  if (m[2] !== fingerprint(owner, f)) {
    throw new ConnectError("page_token was issued for another owner or filter", Code.InvalidArgument);
  }
  return BigInt(m[1]);
}
