/**
 * What the bench writes and reads. Update workloads cycle over a fixed pool of conversations; each
 * pass over the pool moves every conversation to the next of marks 1..4 (set the new one, clear the
 * previous one), so every update is an effective change (a real write, never a no-op, even when a
 * load tool builds a request it never sends) while the number of stored rows stays bounded; the
 * bulk load then fills the store to its target size.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ConversationType,
  ListConversationsRequestSchema,
  ListConversationsResponseSchema,
  UpdateConversationsRequestSchema,
  ResultView,
  UpdateConversationsResponseSchema,
} from "../gen/convmark/v1/mark_service_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { decodeMessage } from "../src/codec/decode.js";
import type { ValidUpdate } from "../src/domain/conversation.js";
import { maskOf } from "../src/domain/marks.js";
import type { CallOutcome } from "./load.js";
import { encodeMessage } from "../src/codec/encode.js";

export const PATHS = {
  healthCheck: "/grpc.health.v1.Health/Check",
  update: "/convmark.v1.MarkService/UpdateConversations",
  list: "/convmark.v1.MarkService/ListConversations",
} as const;

/** One update, independent of the wire format. */
export interface UpdateSpec {
  readonly owner: string;
  readonly conversationId: string;
  readonly group: boolean;
  readonly setMarks: readonly number[];
  readonly clearMarks: readonly number[];
  readonly addLabels?: readonly string[];
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/** Pass `pass` over a pool: set mark 1+(pass%4), clear the mark the previous pass set. */
function rotate(pass: number): { setMarks: number[]; clearMarks: number[] } {
  return { setMarks: [1 + (pass % 4)], clearMarks: [1 + ((pass + 3) % 4)] };
}

/** Single updates spread over `owners` x `convsPerOwner` conversations; consecutive calls hit different owners. */
export class SingleUpdatePool {
  private seq = 0;
  constructor(
    private readonly prefix: string,
    private readonly owners: number,
    private readonly convsPerOwner: number,
  ) {}

  next(): UpdateSpec {
    const size = this.owners * this.convsPerOwner;
    const s = this.seq++;
    const k = s % size;
    return {
      owner: `${this.prefix}-${pad(k % this.owners, 4)}`,
      conversationId: `c${pad(Math.floor(k / this.owners), 4)}`,
      group: false,
      ...rotate(Math.floor(s / size)),
    };
  }
}

/** Batches of one owner's `convsPerOwner` conversations (one user marking many chats), owners in turn. */
export class OwnerBatchPool {
  private seq = 0;
  constructor(
    private readonly prefix: string,
    private readonly owners: number,
    private readonly convsPerOwner: number,
  ) {}

  next(): UpdateSpec[] {
    const s = this.seq++;
    const owner = `${this.prefix}-${pad(s % this.owners, 4)}`;
    const marks = rotate(Math.floor(s / this.owners));
    return Array.from({ length: this.convsPerOwner }, (_, j) => ({ owner, conversationId: `c${pad(j, 4)}`, group: false, ...marks }));
  }
}

/** Bulk content: conversation j of an owner has mark 1+(j%4), mark 5 on every tenth, a label on every 25th. */
export function bulkSpecs(owner: string, from: number, to: number): UpdateSpec[] {
  const out: UpdateSpec[] = [];
  for (let j = from; j < to; j++) {
    out.push({
      owner,
      conversationId: j % 5 === 0 ? `g${pad(j, 4)}` : `p${pad(j, 4)}`,
      group: j % 5 === 0,
      setMarks: j % 10 === 0 ? [1 + (j % 4), 5] : [1 + (j % 4)],
      clearMarks: [],
      ...(j % 25 === 0 ? { addLabels: ["work"] } : {}),
    });
  }
  return out;
}

function toProtoUpdate(u: UpdateSpec) {
  return {
    key: { ownerUserId: u.owner, type: u.group ? ConversationType.GROUP : ConversationType.DIRECT, conversationId: u.conversationId },
    setMarks: [...u.setMarks],
    clearMarks: [...u.clearMarks],
    addLabels: [...(u.addLabels ?? [])],
  };
}

export function updateRequestBytes(specs: readonly UpdateSpec[], resultView = ResultView.UNSPECIFIED): Buffer {
  const msg = create(UpdateConversationsRequestSchema, { updates: specs.map(toProtoUpdate), resultView });
  // The generated encoders (toBinary's bytes): the load process's own encoding costs less of the CPU it shares with the server.
  const bytes = encodeMessage(UpdateConversationsRequestSchema, msg);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Connect JSON body of an UpdateConversations request. */
export function updateRequestJson(specs: readonly UpdateSpec[]): string {
  return JSON.stringify({
    updates: specs.map((u) => ({
      key: { ownerUserId: u.owner, type: u.group ? "CONVERSATION_TYPE_GROUP" : "CONVERSATION_TYPE_DIRECT", conversationId: u.conversationId },
      ...(u.setMarks.length ? { setMarks: u.setMarks } : {}),
      ...(u.clearMarks.length ? { clearMarks: u.clearMarks } : {}),
      ...(u.addLabels?.length ? { addLabels: u.addLabels } : {}),
    })),
  });
}

/** autocannon's request for UpdateConversations(1) over Connect JSON: a new update of `pool` per request. */
export function connectUpdateRequest(pool: SingleUpdatePool) {
  return {
    method: "POST",
    path: PATHS.update,
    headers: { "content-type": "application/json", "connect-protocol-version": "1" },
    body: updateRequestJson([pool.next()]),
    setupRequest: <R extends { body?: unknown }>(req: R): R => ({ ...req, body: updateRequestJson([pool.next()]) }),
  } as const;
}

/** The same updates as the store takes them (what MarkService hands over after validation). */
export function toValidUpdates(specs: readonly UpdateSpec[]): ValidUpdate[] {
  return specs.map((u) => ({
    key: { owner: u.owner, type: u.group ? 2 : 1, conversationId: u.conversationId },
    setMask: maskOf(u.setMarks),
    clearMask: maskOf(u.clearMarks),
    addLabels: [...(u.addLabels ?? [])],
    removeLabels: [],
    settings: {},
  }));
}

/** Every result OK and changed: the units are the updates applied. */
export function checkUpdateResponse(bytes: Buffer, expected: number): CallOutcome {
  const res = decodeMessage(UpdateConversationsResponseSchema, bytes);
  if (res.results.length !== expected) return { error: `${res.results.length} results for ${expected} updates` };
  let ok = 0;
  let firstError: string | undefined;
  for (const r of res.results) {
    if ((r.status?.code ?? 0) === 0 && r.changed) ok++;
    else firstError ??= r.status?.code ? `update failed: code ${r.status.code} ${r.status.message}` : "update changed nothing";
  }
  return ok === expected ? { units: ok } : { error: firstError ?? "update failed" };
}

/** Connect JSON: every result has an OK status (code 0 is omitted in JSON) and changed. */
export function checkUpdateJson(body: string): boolean {
  try {
    const res = JSON.parse(body) as { results?: { status?: { code?: number }; changed?: boolean }[] };
    return Array.isArray(res.results) && res.results.length > 0 && res.results.every((r) => !r.status?.code && r.changed === true);
  } catch {
    return false;
  }
}

export const healthCheckBytes = (() => {
  const bytes = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
})();

export function checkHealthResponse(bytes: Buffer): CallOutcome {
  const res = fromBinary(HealthCheckResponseSchema, bytes);
  return res.status === HealthCheckResponse_ServingStatus.SERVING ? { units: 1 } : { error: `health status ${res.status}` };
}

export function listRequestBytes(owner: string, marksAny: number[], pageSize: number): Buffer {
  const msg = create(ListConversationsRequestSchema, { ownerUserId: owner, filter: { marksAny }, pageSize });
  const bytes = toBinary(ListConversationsRequestSchema, msg);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Checks a List response. Decoding 100 conversations with protobuf-es costs the load process about
 * a millisecond, which would be counted as server latency with one call in flight; so every response
 * must have the size of the first verified one, and every 25th is decoded and checked in full.
 */
export function listResponseChecker(expected: number): (bytes: Buffer) => CallOutcome {
  let calls = 0;
  let verifiedSize: number | undefined;
  return (bytes) => {
    if (verifiedSize === undefined || calls++ % 25 === 0) {
      const res = decodeMessage(ListConversationsResponseSchema, bytes);
      if (res.conversations.length !== expected) return { error: `list returned ${res.conversations.length} conversations, expected ${expected}` };
      verifiedSize ??= bytes.length;
    }
    // Same owner, same filter, nothing written meanwhile: the same page, byte for byte in size.
    return bytes.length === verifiedSize ? { units: 1 } : { error: `list response of ${bytes.length} bytes, expected ${verifiedSize}` };
  };
}
