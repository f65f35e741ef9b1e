/** Statuses and RPC errors of the CLI in words. */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { reasonOf } from "../service/convert.js";

/** The reason of a status, or undefined (an OK status has none). */
export function reasonText(status: Status | undefined): string | undefined {
  return reasonOf(status);
}

/** "Code: message (REASON)" of a per-item status. */
export function statusText(status: Status | undefined): string {
  const code = status?.code ?? 0;
  const reason = reasonOf(status);
  return `${Code[code] ?? code}: ${status?.message ?? ""}${reason ? ` (${reason})` : ""}`;
}

/** An RPC error in words: its code and the server's message. */
export function rpcErrorText(e: ConnectError): string {
  return `${Code[e.code] ?? e.code}: ${e.rawMessage}`;
}
