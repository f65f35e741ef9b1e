import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ValidUpdate } from "../../src/domain/conversation.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/domain/limits.js";
import {
  validateRestore,
  type ConversationInput,
  Failure,
  isFailure,
  validateKey,
  validateUpdate,
  type KeyInput,
  type SettingsInput,
  type UpdateInput,
} from "../../src/domain/validate.js";

const L: Limits = { ...DEFAULT_LIMITS };

// Byte counts are written out by hand: "é" is 2 UTF-8 bytes, "中" 3, "😀" 4 (two UTF-16 units).
const bytes256Emoji = "😀".repeat(64); // 256 bytes, .length 128
const bytes256Cjk = "中".repeat(85) + "a"; // 256 bytes, .length 86
const bytes257 = "é" + "中".repeat(85); // 257 bytes, .length 86
const bytes255 = "中".repeat(85); // 255 bytes
const bytes4096 = "中".repeat(1365) + "a"; // 4096 bytes, .length 1366
const bytes4097 = "中".repeat(1365) + "é"; // 4097 bytes, .length 1366
const LONE_HIGH = "a\uD800b";
const LONE_LOW = "\uDC00";

const KEY: KeyInput = { ownerUserId: "alice", type: 1, conversationId: "bob" };

function upd(over: Partial<UpdateInput> = {}): UpdateInput {
  return { key: KEY, setMarks: [], clearMarks: [], addLabels: [], removeLabels: [], ...over };
}

function ok(u: UpdateInput, limits: Limits = L): ValidUpdate {
  const v = validateUpdate(u, limits);
  if (isFailure(v)) throw new Error(`expected a valid update, got ${v.code}: ${v.message}`);
  return v;
}

function refused(u: UpdateInput, limits: Limits = L, message?: RegExp): Failure {
  const v = validateUpdate(u, limits);
  expect(isFailure(v), `expected INVALID_ARGUMENT, got ${JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x))}`).toBe(true);
  const f = v as Failure;
  expect(f).toBeInstanceOf(Failure);
  expect(f.code).toBe(Code.InvalidArgument);
  expect(f.reason).toBe("FIELD_INVALID");
  expect(f.field).toBeTruthy();
  expect(f.message).toBe(`${f.field} ${f.problem}`);
  expect(typeof f.message).toBe("string");
  expect(f.message.length).toBeGreaterThan(0);
  if (message) expect(f.message).toMatch(message);
  return f;
}

describe("sanity of the hand-counted fixtures", () => {
  it("byte lengths", () => {
    expect(Buffer.byteLength(bytes256Emoji)).toBe(256);
    expect(Buffer.byteLength(bytes256Cjk)).toBe(256);
    expect(Buffer.byteLength(bytes257)).toBe(257);
    expect(Buffer.byteLength(bytes255)).toBe(255);
    expect(Buffer.byteLength(bytes4096)).toBe(4096);
    expect(Buffer.byteLength(bytes4097)).toBe(4097);
    // All of these are short in UTF-16 units: a char-counting check would let them through.
    expect(bytes257.length).toBeLessThan(256);
    expect(bytes4097.length).toBeLessThan(4096);
  });
});

describe("validateKey", () => {
  it("refuses a missing key", () => {
    const f = validateKey(undefined, L);
    expect(isFailure(f) && f.code).toBe(Code.InvalidArgument);
    refused(upd({ key: undefined }), L, /key/);
    const noKey: UpdateInput = { setMarks: [1], clearMarks: [], addLabels: [], removeLabels: [] };
    refused(noKey, L, /key/);
  });

  it("refuses an empty owner or conversation id", () => {
    for (const k of [
      { ...KEY, ownerUserId: "" },
      { ...KEY, conversationId: "" },
      { ownerUserId: "", type: 2, conversationId: "" },
    ]) {
      const f = validateKey(k, L);
      expect(isFailure(f) && f.code).toBe(Code.InvalidArgument);
      refused(upd({ key: k }));
    }
    expect((validateKey({ ...KEY, ownerUserId: "" }, L) as Failure).message).toMatch(/owner/);
    expect((validateKey({ ...KEY, conversationId: "" }, L) as Failure).message).toMatch(/conversation/);
  });

  it("counts the id limit in UTF-8 bytes, not characters", () => {
    for (const id of [bytes256Emoji, bytes256Cjk]) {
      expect(validateKey({ ...KEY, ownerUserId: id }, L)).toEqual({ owner: id, type: 1, conversationId: "bob" });
      expect(validateKey({ ...KEY, conversationId: id }, L)).toEqual({ owner: "alice", type: 1, conversationId: id });
    }
    for (const id of [bytes257, bytes256Emoji + "a", "😀".repeat(65)]) {
      const a = validateKey({ ...KEY, ownerUserId: id }, L);
      const b = validateKey({ ...KEY, conversationId: id }, L);
      expect(isFailure(a) && a.code).toBe(Code.InvalidArgument);
      expect(isFailure(b) && b.code).toBe(Code.InvalidArgument);
      refused(upd({ key: { ...KEY, ownerUserId: id } }));
      refused(upd({ key: { ...KEY, conversationId: id } }));
    }
  });

  it("follows a configured maxIdBytes", () => {
    const small = { ...L, maxIdBytes: 4 };
    const k = { ownerUserId: "u", type: 1, conversationId: "c" };
    expect(isFailure(validateKey(k, small))).toBe(false);
    expect(isFailure(validateKey({ ...k, ownerUserId: "😀" }, small))).toBe(false);
    expect(isFailure(validateKey({ ...k, ownerUserId: "中中" }, small))).toBe(true); // 6 bytes, 2 chars
    expect(isFailure(validateKey({ ...k, conversationId: "éé" }, small))).toBe(false); // 4 bytes
    expect(isFailure(validateKey({ ...k, conversationId: "ééa" }, small))).toBe(true); // 5 bytes
  });

  it("refuses type 0 (unspecified), 3 and other values", () => {
    for (const type of [0, 3, -1, 1.5]) {
      const f = validateKey({ ...KEY, type }, L);
      expect(isFailure(f) && f.code).toBe(Code.InvalidArgument);
      refused(upd({ key: { ...KEY, type } }), L, /type/);
    }
  });

  it("refuses ids that are not well-formed UTF-16 (lone surrogates)", () => {
    for (const bad of [LONE_HIGH, LONE_LOW, "\uD83D", "x\uDE00"]) {
      expect(isFailure(validateKey({ ...KEY, ownerUserId: bad }, L))).toBe(true);
      expect(isFailure(validateKey({ ...KEY, conversationId: bad }, L))).toBe(true);
      refused(upd({ key: { ...KEY, conversationId: bad } }));
    }
  });

  it("accepts direct and group keys and returns the domain key", () => {
    expect(validateKey({ ownerUserId: "u1", type: 1, conversationId: "peer" }, L)).toEqual({ owner: "u1", type: 1, conversationId: "peer" });
    expect(validateKey({ ownerUserId: "u1", type: 2, conversationId: "g" }, L)).toEqual({ owner: "u1", type: 2, conversationId: "g" });
    // A well-formed surrogate pair is fine.
    expect(isFailure(validateKey({ ...KEY, conversationId: "😀" }, L))).toBe(false);
  });
});

describe("validateUpdate: marks", () => {
  it("refuses mark 0 and 65 in set_marks and clear_marks", () => {
    for (const m of [0, 65, 100, 4294967295]) {
      refused(upd({ setMarks: [m] }), L, /set_marks/);
      refused(upd({ clearMarks: [m] }), L, /clear_marks/);
      refused(upd({ setMarks: [1, 2, m] }));
    }
  });

  it("refuses fractional and negative marks", () => {
    refused(upd({ setMarks: [1.5] }));
    refused(upd({ clearMarks: [-1] }));
    refused(upd({ setMarks: [Number.NaN] }));
  });

  it("refuses a mark in both set and clear", () => {
    refused(upd({ setMarks: [1, 2], clearMarks: [2, 3] }), L, /both/);
    refused(upd({ setMarks: [64], clearMarks: [64] }), L, /both/);
  });

  it("builds the masks, including mark 64", () => {
    const v = ok(upd({ setMarks: [1, 64, 1], clearMarks: [2, 33] }));
    expect(v.setMask).toBe(9223372036854775809n); // 2^63 + 1
    expect(v.clearMask).toBe(4294967298n); // 2^32 + 2
    const all = ok(upd({ setMarks: Array.from({ length: 64 }, (_, i) => i + 1) }));
    expect(all.setMask).toBe(18446744073709551615n);
    expect(all.clearMask).toBe(0n);
  });
});

describe("validateUpdate: custom mark", () => {
  it("accepts exactly 256 bytes of multi-byte text and refuses 257", () => {
    expect(ok(upd({ customMark: bytes256Emoji })).customMark).toBe(bytes256Emoji);
    expect(ok(upd({ customMark: bytes256Cjk })).customMark).toBe(bytes256Cjk);
    refused(upd({ customMark: bytes257 }), L, /custom_mark/);
    refused(upd({ customMark: bytes256Emoji + "a" }), L, /custom_mark/);
  });

  it("accepts an empty custom mark (removal) and keeps it present", () => {
    const v = ok(upd({ customMark: "" }));
    expect("customMark" in v).toBe(true);
    expect(v.customMark).toBe("");
  });

  it("refuses lone surrogates", () => {
    refused(upd({ customMark: LONE_HIGH }), L, /custom_mark/);
    refused(upd({ customMark: LONE_LOW }), L, /custom_mark/);
  });

  it("leaves an absent custom mark absent", () => {
    const v = ok(upd({ setMarks: [1] }));
    expect("customMark" in v).toBe(false);
    expect(v.customMark).toBeUndefined();
  });
});

describe("validateUpdate: labels", () => {
  it("refuses an empty label", () => {
    refused(upd({ addLabels: [""] }), L, /add_labels/);
    refused(upd({ removeLabels: ["ok", ""] }), L, /remove_labels/);
  });

  it("accepts 255 bytes and refuses 256 bytes (multi-byte)", () => {
    expect(ok(upd({ addLabels: [bytes255] })).addLabels).toEqual([bytes255]);
    expect(ok(upd({ removeLabels: [bytes255] })).removeLabels).toEqual([bytes255]);
    refused(upd({ addLabels: [bytes256Cjk] }), L, /add_labels/);
    refused(upd({ addLabels: ["é".repeat(128)] }), L, /add_labels/);
    refused(upd({ removeLabels: [bytes256Emoji] }), L, /remove_labels/);
  });

  it("refuses lone surrogates", () => {
    refused(upd({ addLabels: [LONE_HIGH] }));
    refused(upd({ removeLabels: [LONE_LOW] }));
  });

  it("refuses a label in both add and remove", () => {
    refused(upd({ addLabels: ["a", "b"], removeLabels: ["c", "b"] }), L, /both/);
  });

  it("refuses more add_labels than a conversation may carry, counting distinct labels", () => {
    const small = { ...L, maxLabelsPerConversation: 3 };
    expect(ok(upd({ addLabels: ["a", "b", "c"] }), small).addLabels).toEqual(["a", "b", "c"]);
    refused(upd({ addLabels: ["a", "b", "c", "d"] }), small, /add_labels/);
    // Duplicates count once.
    expect(ok(upd({ addLabels: ["a", "b", "a", "c", "b"] }), small).addLabels).toEqual(["a", "b", "c"]);
    const many = Array.from({ length: 33 }, (_, i) => `l${i}`);
    refused(upd({ addLabels: many }));
    expect(ok(upd({ addLabels: many.slice(0, 32) })).addLabels).toHaveLength(32);
  });

  it("deduplicates add and remove labels, keeping first occurrence order", () => {
    const v = ok(upd({ addLabels: ["z", "a", "z", "m", "a"], removeLabels: ["q", "q", "p"] }));
    expect(v.addLabels).toEqual(["z", "a", "m"]);
    expect(v.removeLabels).toEqual(["q", "p"]);
  });
});

describe("validateUpdate: settings", () => {
  const s = (settings: SettingsInput) => upd({ settings });

  it("refuses receive_option 0 and 4", () => {
    refused(s({ receiveOption: 0 }), L, /receive_option/);
    refused(s({ receiveOption: 4 }), L, /receive_option/);
    refused(s({ receiveOption: -1 }), L, /receive_option/);
  });

  it("accepts receive_option 1..3", () => {
    for (const r of [1, 2, 3]) expect(ok(s({ receiveOption: r })).settings).toEqual({ receiveOption: r });
  });

  it("refuses a negative or fractional burn duration, accepts 0", () => {
    refused(s({ burnDurationSeconds: -1 }), L, /burn_duration/);
    refused(s({ burnDurationSeconds: 1.5 }), L, /burn_duration/);
    refused(s({ burnDurationSeconds: Number.NaN }), L, /burn_duration/);
    expect(ok(s({ burnDurationSeconds: 0 })).settings).toEqual({ burnDurationSeconds: 0 });
    expect(ok(s({ burnDurationSeconds: 2147483647 })).settings).toEqual({ burnDurationSeconds: 2147483647 });
  });

  it("limits attached_info and ex in UTF-8 bytes", () => {
    expect(ok(s({ attachedInfo: bytes4096 })).settings).toEqual({ attachedInfo: bytes4096 });
    expect(ok(s({ ex: bytes4096 })).settings).toEqual({ ex: bytes4096 });
    refused(s({ attachedInfo: bytes4097 }), L, /attached_info/);
    refused(s({ ex: bytes4097 }), L, /\bex\b/);
    const small = { ...L, maxSettingStringBytes: 3 };
    expect(ok(s({ ex: "中" }), small).settings).toEqual({ ex: "中" });
    refused(s({ ex: "éé" }), small);
  });

  it("accepts empty setting strings (they are values, not removals)", () => {
    expect(ok(s({ attachedInfo: "", ex: "" })).settings).toEqual({ attachedInfo: "", ex: "" });
  });

  it("refuses lone surrogates in setting strings", () => {
    refused(s({ attachedInfo: LONE_HIGH }));
    refused(s({ ex: LONE_LOW }));
  });

  it("keeps absent fields absent and present false values present", () => {
    expect(ok(upd()).settings).toEqual({});
    expect(Object.keys(ok(s({})).settings)).toEqual([]);
    const v = ok(s({ pinned: false, privateChat: false }));
    expect(v.settings).toEqual({ pinned: false, privateChat: false });
    expect(Object.keys(v.settings).sort()).toEqual(["pinned", "privateChat"]);
    // Explicit undefined (how protobuf-es represents an unset optional) is not presence.
    const u = ok(s({ pinned: undefined, receiveOption: undefined, ex: undefined, burnDurationSeconds: 5 }));
    expect(Object.keys(u.settings)).toEqual(["burnDurationSeconds"]);
  });

  it("copies every setting field", () => {
    const v = ok(s({ pinned: true, receiveOption: 3, privateChat: true, burnDurationSeconds: 30, attachedInfo: "info", ex: "{}" }));
    expect(v.settings).toEqual({ pinned: true, receiveOption: 3, privateChat: true, burnDurationSeconds: 30, attachedInfo: "info", ex: "{}" });
  });
});

describe("validateUpdate: valid output", () => {
  it("returns key, masks, labels and settings", () => {
    const v = ok({
      key: { ownerUserId: "u", type: 2, conversationId: "g1" },
      setMarks: [3, 1],
      clearMarks: [64],
      customMark: "vip",
      addLabels: ["work", "work", "home"],
      removeLabels: ["old"],
      settings: { pinned: true },
    });
    expect(v).toEqual({
      key: { owner: "u", type: 2, conversationId: "g1" },
      setMask: 5n,
      clearMask: 9223372036854775808n,
      customMark: "vip",
      addLabels: ["work", "home"],
      removeLabels: ["old"],
      settings: { pinned: true },
    });
  });

  it("an update with only a key is valid and empty", () => {
    expect(ok(upd())).toEqual({
      key: { owner: "alice", type: 1, conversationId: "bob" },
      setMask: 0n,
      clearMask: 0n,
      addLabels: [],
      removeLabels: [],
      settings: {},
    });
  });
});

describe("validateUpdate: vendor_conversation_id", () => {
  it("takes any valid UTF-8 up to the limit verbatim, empty included; refuses longer or malformed", () => {
    const ok = validateUpdate(upd({ vendorConversationId: "si_Bob_alice" }), L) as ValidUpdate;
    expect(ok.vendorConversationId).toBe("si_Bob_alice");
    expect((validateUpdate(upd({ vendorConversationId: "" }), L) as ValidUpdate).vendorConversationId).toBe("");
    expect("vendorConversationId" in (validateUpdate(upd(), L) as ValidUpdate)).toBe(false);
    const max = "中".repeat(341) + "a"; // 1024 bytes
    expect(isFailure(validateUpdate(upd({ vendorConversationId: max }), L))).toBe(false);
    const long = validateUpdate(upd({ vendorConversationId: max + "a" }), L) as Failure;
    expect([long.code, long.field, long.problem]).toEqual([Code.InvalidArgument, "vendor_conversation_id", "is 1025 bytes, at most 1024 allowed"]);
    expect((validateUpdate(upd({ vendorConversationId: LONE_HIGH }), L) as Failure).field).toBe("vendor_conversation_id");
  });
});

describe("validateRestore", () => {
  const base: ConversationInput = {
    key: { ownerUserId: "o", type: 1, conversationId: "c" },
    marks: [1, 64],
    markBits: (1n << 63n) | 1n,
    customMark: "m",
    labels: ["b", "a", "b"],
    settings: { pinned: false },
    version: 4n,
    updateTime: { seconds: 1_700_000_000n, nanos: 123_456_789 },
    vendorConversationId: "si_o_c",
  };
  const field = (c: Partial<ConversationInput>) => {
    const v = validateRestore({ ...base, ...c }, L);
    return isFailure(v) ? [v.code, v.field] : "ok";
  };

  it("keeps version and update time (to the millisecond), sorts and dedupes labels, takes marks or mark_bits", () => {
    expect(validateRestore(base, L)).toEqual({
      key: { owner: "o", type: 1, conversationId: "c" },
      marks: (1n << 63n) | 1n,
      customMark: "m",
      labels: ["a", "b"],
      settings: { pinned: false },
      version: 4n,
      updateTimeMs: 1_700_000_000_123,
      position: 0n,
      vendorConversationId: "si_o_c",
    });
    expect(field({ marks: [] })).toBe("ok");
    expect(field({ markBits: 0n })).toBe("ok");
  });

  it("refuses what cannot be a stored conversation, naming the field", () => {
    expect(field({ version: 0n })).toEqual([Code.InvalidArgument, "version"]);
    expect(field({ updateTime: undefined })).toEqual([Code.InvalidArgument, "update_time"]);
    expect(field({ updateTime: { seconds: -1n, nanos: 0 } })).toEqual([Code.InvalidArgument, "update_time"]);
    expect(field({ updateTime: { seconds: 10n ** 15n, nanos: 0 } })).toEqual([Code.InvalidArgument, "update_time"]);
    expect(field({ markBits: 2n })).toEqual([Code.InvalidArgument, "mark_bits"]);
    expect(field({ marks: [65] })).toEqual([Code.InvalidArgument, "marks"]);
    expect(field({ labels: Array.from({ length: L.maxLabelsPerConversation + 1 }, (_, i) => `l${i}`) })).toEqual([Code.InvalidArgument, "labels"]);
    expect(field({ customMark: "x".repeat(L.maxCustomMarkBytes + 1) })).toEqual([Code.InvalidArgument, "custom_mark"]);
    expect(field({ settings: { receiveOption: 9 } })).toEqual([Code.InvalidArgument, "settings.receive_option"]);
    expect(field({ key: { ownerUserId: "", type: 1, conversationId: "c" } })).toEqual([Code.InvalidArgument, "key.owner_user_id"]);
  });
});
