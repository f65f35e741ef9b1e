/**
 * `convmark export` and `convmark import`: NDJSON, one Conversation (its proto JSON) per line.
 * Export reads the feed from its beginning (SyncConversations: every owner, or one), which holds
 * each live conversation's latest state in commit order; import writes batches of
 * RestoreConversations, which keep each conversation's version and update time, so an export
 * imported into an empty server reproduces every conversation exactly (and in the same list order).
 */
import { createInterface } from "node:readline";
import { fromJson, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import cliProgress from "cli-progress";
import {
  ConversationSchema,
  ConversationType,
  ResultView,
  type Conversation,
  type ConversationKey,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { anyTypeRegistry } from "../service/json-registry.js";
import type { Clients } from "./client.js";
import { reasonText } from "./output.js";

const PAGE = 1000;


/** The one line of NDJSON for a conversation. */
export function conversationLine(c: Conversation): string {
  return toJsonString(ConversationSchema, c, { registry: anyTypeRegistry });
}

/** Writes every conversation (of `user`, or of every owner) to `out`; returns how many. */
export async function exportConversations(clients: Clients, out: NodeJS.WritableStream, user?: string): Promise<number> {
  let n = 0;
  const write = async (line: string) => {
    if (!out.write(line + "\n")) await new Promise((r) => out.once("drain", r));
    n++;
  };
  // The feed from its beginning holds each live conversation's latest state, oldest change first:
  // imported in that order, the target lists them in the same order (newest change first).
  let cursor = "";
  for (;;) {
    const page = await clients.marks.syncConversations({ ownerUserId: user ?? "", cursor, pageSize: PAGE });
    if (page.reset) throw new ConnectError("the change feed was reset while exporting; run the export again", Code.Aborted);
    for (const ch of page.changes) if (!ch.deleted && ch.conversation) await write(conversationLine(ch.conversation));
    cursor = page.nextCursor;
    if (!page.hasMore) return n;
  }
}

export interface ImportOptions {
  batchSize: number;
  /** Show a progress bar (on stderr, only when it is a terminal). */
  progress: boolean;
}

export interface ImportFailure {
  line: number;
  key?: string;
  code: string;
  message: string;
}

export interface ImportSummary {
  read: number;
  /** Restored as read. */
  written: number;
  /** The target already had this version of the conversation, or a newer one, and kept it. */
  skipped: number;
  failed: number;
  failures: ImportFailure[];
}

const keyText = (k: ConversationKey | undefined) =>
  k ? `${k.ownerUserId}/${k.type === ConversationType.GROUP ? "group" : k.type === ConversationType.DIRECT ? "direct" : "?"}/${k.conversationId}` : "?";

/**
 * A line written by hand or by another system may carry neither version nor update time: it is
 * restored as version 1 at the time of the import (so it is skipped where the target has it).
 */
function restorable(c: Conversation, nowMs: number): Conversation {
  if (c.version === 0n) c.version = 1n;
  if (!c.updateTime) c.updateTime = timestampFromMs(nowMs);
  return c;
}

interface Pending {
  line: number;
  conversation: Conversation;
}

/** Reads NDJSON from `input` and writes it in batches; never throws for bad lines or failed items. */
export async function importConversations(clients: Clients, input: NodeJS.ReadableStream, opts: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { read: 0, written: 0, skipped: 0, failed: 0, failures: [] };
  const fail = (f: ImportFailure) => {
    summary.failed++;
    summary.failures.push(f);
  };
  const bar = opts.progress && process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: "import |{bar}| {value}/{total} lines · {written} written · {failed} failed", hideCursor: true, etaBuffer: 50 },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(0, 0, { written: 0, failed: 0 });
  const tick = () => bar?.update(summary.written + summary.skipped + summary.failed, { written: summary.written, failed: summary.failed });

  let batch: Pending[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    await writeBatch(clients, items, summary, fail);
    tick();
  };

  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  for await (const text of lines) {
    lineNo++;
    if (text.trim() === "") continue;
    summary.read++;
    bar?.setTotal(summary.read);
    let conversation: Conversation;
    try {
      conversation = fromJson(ConversationSchema, JSON.parse(text) as JsonValue, { registry: anyTypeRegistry });
    } catch (e) {
      fail({ line: lineNo, code: "invalid_line", message: `not a Conversation in JSON: ${(e as Error).message}` });
      continue;
    }
    const k = conversation.key;
    if (!k || k.ownerUserId === "" || k.conversationId === "" || k.type === ConversationType.UNSPECIFIED) {
      fail({ line: lineNo, key: keyText(k), code: "invalid_line", message: "key needs ownerUserId, type (DIRECT or GROUP) and conversationId" });
      continue;
    }
    batch.push({ line: lineNo, conversation: restorable(conversation, Date.now()) });
    if (batch.length >= opts.batchSize) await flush();
  }
  await flush();
  bar?.stop();
  return summary;
}

async function writeBatch(clients: Clients, items: Pending[], summary: ImportSummary, fail: (f: ImportFailure) => void): Promise<void> {
  try {
    const res = await clients.marks.restoreConversations({ conversations: items.map((p) => p.conversation), resultView: ResultView.STATUS });
    res.results.forEach((r, i) => {
      const item = items[i]!;
      const code = r.status?.code ?? 0;
      if (code !== 0) fail({ line: item.line, key: keyText(item.conversation.key), code: reasonText(r.status) ?? Code[code] ?? String(code), message: r.status?.message ?? "" });
      else if (r.changed) summary.written++;
      else summary.skipped++;
    });
  } catch (e) {
    const err = ConnectError.from(e);
    for (const p of items) fail({ line: p.line, key: keyText(p.conversation.key), code: Code[err.code], message: err.rawMessage });
  }
}
