/**
 * `convmark export` and `convmark import`: NDJSON, one Conversation (its proto JSON) per line.
 * Export reads every owner through SyncConversations (owner ""), or one owner through
 * ListConversations; import writes batches of UpdateConversations that reproduce each record.
 */
import { createInterface } from "node:readline";
import { create, fromJson, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import cliProgress from "cli-progress";
import {
  ConversationSchema,
  ConversationType,
  ConversationUpdateSchema,
  ResultView,
  type Conversation,
  type ConversationKey,
  type ConversationUpdate,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { MAX_MARK, MIN_MARK, marksOf } from "../domain/marks.js";
import { anyTypeRegistry } from "../service/json-registry.js";
import type { Clients } from "./client.js";
import { reasonText } from "./output.js";

const PAGE = 1000;
/** BatchGetConversations accepts at most this many keys (the server's default limit). */
const GET_CHUNK = 1000;


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
  if (user !== undefined) {
    let pageToken = "";
    do {
      const page = await clients.marks.listConversations({ ownerUserId: user, pageSize: PAGE, pageToken });
      for (const c of page.conversations) await write(conversationLine(c));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return n;
  }
  // Every owner: the feed from its beginning holds each live conversation's latest state.
  let cursor = "";
  for (;;) {
    const page = await clients.marks.syncConversations({ ownerUserId: "", cursor, pageSize: PAGE });
    if (page.reset) throw new ConnectError("the change feed was reset while exporting; run the export again", Code.Aborted);
    for (const ch of page.changes) if (!ch.deleted && ch.conversation) await write(conversationLine(ch.conversation));
    cursor = page.nextCursor;
    if (!page.hasMore) return n;
  }
}

export interface ImportOptions {
  batchSize: number;
  resume: boolean;
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
  written: number;
  unchanged: number;
  skipped: number;
  failed: number;
  failures: ImportFailure[];
}

const keyText = (k: ConversationKey | undefined) =>
  k ? `${k.ownerUserId}/${k.type === ConversationType.GROUP ? "group" : k.type === ConversationType.DIRECT ? "direct" : "?"}/${k.conversationId}` : "?";

/** Marks of a record: `marks`, plus `mark_bits` for a line written by a client that set only the bits. */
function marksOfRecord(c: Conversation): number[] {
  return [...new Set([...c.marks, ...marksOf(c.markBits)])].sort((a, b) => a - b);
}

/**
 * The update that makes the stored record equal to `c` (marks, custom mark, labels, settings),
 * whatever is stored now: marks not in `c` are cleared, labels in `existing` but not in `c` removed.
 */
export function updateFor(c: Conversation, existing?: Conversation): ConversationUpdate {
  const marks = marksOfRecord(c);
  const has = new Set(marks);
  const clear: number[] = [];
  for (let m = MIN_MARK; m <= MAX_MARK; m++) if (!has.has(m)) clear.push(m);
  const labels = new Set(c.labels);
  return create(ConversationUpdateSchema, {
    key: c.key,
    setMarks: marks,
    clearMarks: clear,
    customMark: c.customMark,
    addLabels: c.labels,
    removeLabels: existing ? existing.labels.filter((l) => !labels.has(l)) : [],
    ...(c.settings ? { settings: c.settings } : {}),
  });
}

/** Same content (what import can reproduce: not version and update time). */
export function sameContent(a: Conversation, b: Conversation): boolean {
  const strip = (c: Conversation) => {
    const j = JSON.parse(conversationLine(c)) as Record<string, JsonValue>;
    delete j.version;
    delete j.updateTime;
    if (Array.isArray(j.labels)) j.labels = [...(j.labels as string[])].sort();
    return JSON.stringify(j);
  };
  return strip(a) === strip(b);
}

interface Pending {
  line: number;
  conversation: Conversation;
}

/** Reads NDJSON from `input` and writes it in batches; never throws for bad lines or failed items. */
export async function importConversations(clients: Clients, input: NodeJS.ReadableStream, opts: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { read: 0, written: 0, unchanged: 0, skipped: 0, failed: 0, failures: [] };
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
  const tick = () => bar?.update(summary.written + summary.unchanged + summary.skipped + summary.failed, { written: summary.written, failed: summary.failed });

  let batch: Pending[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    await writeBatch(clients, items, opts.resume, summary, fail);
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
    batch.push({ line: lineNo, conversation });
    if (batch.length >= opts.batchSize) await flush();
  }
  await flush();
  bar?.stop();
  return summary;
}

async function writeBatch(clients: Clients, items: Pending[], resume: boolean, summary: ImportSummary, fail: (f: ImportFailure) => void): Promise<void> {
  let existing: (Conversation | undefined)[] = items.map(() => undefined);
  if (resume) {
    try {
      existing = [];
      for (let i = 0; i < items.length; i += GET_CHUNK) {
        const chunk = items.slice(i, i + GET_CHUNK);
        const got = await clients.marks.batchGetConversations({ keys: chunk.map((p) => p.conversation.key!) });
        existing.push(...got.conversations.map((c) => (c.version === 0n ? undefined : c)));
      }
    } catch (e) {
      const err = ConnectError.from(e);
      for (const p of items) fail({ line: p.line, key: keyText(p.conversation.key), code: Code[err.code], message: err.rawMessage });
      return;
    }
  }
  const todo: { item: Pending; update: ConversationUpdate }[] = [];
  items.forEach((item, i) => {
    const have = existing[i];
    if (resume && have && sameContent(have, item.conversation)) summary.skipped++;
    else todo.push({ item, update: updateFor(item.conversation, have) });
  });
  if (todo.length === 0) return;
  try {
    const res = await clients.marks.updateConversations({ updates: todo.map((t) => t.update), resultView: ResultView.STATUS });
    res.results.forEach((r, i) => {
      const { item } = todo[i]!;
      const code = r.status?.code ?? 0;
      if (code !== 0) fail({ line: item.line, key: keyText(item.conversation.key), code: reasonText(r.status) ?? Code[code] ?? String(code), message: r.status?.message ?? "" });
      else if (r.changed) summary.written++;
      else summary.unchanged++;
    });
  } catch (e) {
    const err = ConnectError.from(e);
    for (const t of todo) fail({ line: t.item.line, key: keyText(t.item.conversation.key), code: Code[err.code], message: err.rawMessage });
  }
}
