/** Human output of the CLI: plain aligned columns (no colours, so pipes and logs stay clean). */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConversationType, ReceiveOption, type Conversation } from "../../gen/convmark/v1/mark_service_pb.js";
import { markName } from "../domain/mark-names.js";

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - width(c))))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Display width, counting East Asian wide characters (labels are often Chinese) as two columns. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    w += cp >= 0x1100 && (cp <= 0x115f || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x20000 && cp <= 0x3fffd)) ? 2 : 1;
  }
  return w;
}

export function typeName(t: ConversationType): string {
  return t === ConversationType.DIRECT ? "direct" : t === ConversationType.GROUP ? "group" : "unspecified";
}

export function receiveName(r: ReceiveOption | undefined): string {
  switch (r) {
    case ReceiveOption.RECEIVE:
      return "receive";
    case ReceiveOption.DO_NOT_RECEIVE:
      return "do-not-receive";
    case ReceiveOption.RECEIVE_SILENTLY:
      return "silent";
    default:
      return "-";
  }
}

export function marksText(marks: readonly number[]): string {
  return marks.length ? marks.map(markName).join(",") : "-";
}

export function updatedText(c: Conversation): string {
  return c.updateTime ? timestampDate(c.updateTime).toISOString() : "-";
}

export const CONVERSATION_HEADER = ["TYPE", "CONVERSATION", "MARKS", "CUSTOM", "LABELS", "PINNED", "RECEIVE", "VERSION", "UPDATED"] as const;

export function conversationRow(c: Conversation): string[] {
  return [
    typeName(c.key?.type ?? ConversationType.UNSPECIFIED),
    c.key?.conversationId ?? "",
    marksText(c.marks),
    c.customMark === "" ? "-" : JSON.stringify(c.customMark),
    c.labels.length ? c.labels.join(",") : "-",
    c.settings?.pinned ? "yes" : "no",
    receiveName(c.settings?.receiveOption),
    String(c.version),
    updatedText(c),
  ];
}

/** One conversation as `field: value` lines (`convmark get`). */
export function conversationDetails(c: Conversation): string {
  const s = c.settings;
  const rows: [string, string][] = [
    ["owner", c.key?.ownerUserId ?? ""],
    ["type", typeName(c.key?.type ?? ConversationType.UNSPECIFIED)],
    ["conversation", c.key?.conversationId ?? ""],
    ["marks", marksText(c.marks)],
    ["mark bits", String(c.markBits)],
    ["custom mark", c.customMark === "" ? "-" : JSON.stringify(c.customMark)],
    ["labels", c.labels.length ? c.labels.join(", ") : "-"],
    ["pinned", s?.pinned === undefined ? "-" : s.pinned ? "yes" : "no"],
    ["receive option", receiveName(s?.receiveOption)],
    ["private chat", s?.privateChat === undefined ? "-" : s.privateChat ? "yes" : "no"],
    ["burn duration", s?.burnDurationSeconds === undefined ? "-" : `${s.burnDurationSeconds}s`],
    ["attached info", s?.attachedInfo === undefined ? "-" : JSON.stringify(s.attachedInfo)],
    ["ex", s?.ex === undefined ? "-" : JSON.stringify(s.ex)],
    ["version", String(c.version)],
    ["updated", updatedText(c)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}
