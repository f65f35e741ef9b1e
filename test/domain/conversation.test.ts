import { describe, expect, it } from "vitest";
import {
  applyUpdate,
  emptyRecord,
  isMarked,
  keyString,
  type ConvKey,
  type ConversationRecord,
  type Settings,
  type ValidUpdate,
} from "../../src/domain/conversation.js";

const K: ConvKey = { owner: "alice", type: 1, conversationId: "bob" };
const T0 = 1_700_000_000_000;
const T1 = 1_700_000_005_000;
const BIT64 = 9223372036854775808n;

function u(over: Partial<Omit<ValidUpdate, "key">> = {}): ValidUpdate {
  return { key: K, setMask: 0n, clearMask: 0n, addLabels: [], removeLabels: [], settings: {}, ...over };
}

function rec(over: Partial<ConversationRecord> = {}): ConversationRecord {
  return {
    key: K,
    marks: 0n,
    customMark: "",
    labels: [],
    settings: {},
    version: 7n,
    updateTimeMs: T0,
    position: 42n,
    ...over,
  };
}

function expectNoop(cur: ConversationRecord | undefined, up: ValidUpdate) {
  const r = applyUpdate(cur, up, T1);
  expect(r.changed).toBe(false);
  if (cur) {
    expect(r.next).toEqual(cur);
    expect(r.next.version).toBe(cur.version);
    expect(r.next.updateTimeMs).toBe(cur.updateTimeMs);
    expect(r.next.position).toBe(cur.position);
  } else {
    expect(r.next.version).toBe(0n);
    expect(r.next.updateTimeMs).toBe(0);
  }
  return r.next;
}

function expectChange(cur: ConversationRecord | undefined, up: ValidUpdate) {
  const r = applyUpdate(cur, up, T1);
  expect(r.changed).toBe(true);
  expect(r.next.version).toBe((cur?.version ?? 0n) + 1n);
  expect(r.next.updateTimeMs).toBe(T1);
  expect(r.next.key).toEqual(K);
  return r.next;
}

describe("emptyRecord / keyString", () => {
  it("an empty record is unmarked and never written", () => {
    expect(emptyRecord(K)).toEqual({ key: K, marks: 0n, customMark: "", labels: [], settings: {}, version: 0n, updateTimeMs: 0, position: 0n });
  });

  it("keyString distinguishes owner, type and id", () => {
    const a = keyString({ owner: "a", type: 1, conversationId: "b" });
    expect(a).not.toBe(keyString({ owner: "a", type: 2, conversationId: "b" }));
    expect(a).not.toBe(keyString({ owner: "b", type: 1, conversationId: "a" }));
    expect(a).toBe(keyString({ owner: "a", type: 1, conversationId: "b" }));
  });
});

describe("applyUpdate: marks", () => {
  it("sets marks on a never-written conversation (version 1)", () => {
    const n = expectChange(undefined, u({ setMask: 5n | BIT64 }));
    expect(n.marks).toBe(BIT64 | 5n);
    expect(n.version).toBe(1n);
  });

  it("set ORs in, clear ANDs out, others untouched", () => {
    const cur = rec({ marks: 0b1010n | BIT64 });
    const n = expectChange(cur, u({ setMask: 0b0001n, clearMask: BIT64 | 0b1000n }));
    expect(n.marks).toBe(0b0011n);
    expect(n.version).toBe(8n);
    expect(n.updateTimeMs).toBe(T1);
  });

  it("clearing marks that are not set is a no-op", () => {
    expectNoop(rec({ marks: 1n }), u({ clearMask: 2n | BIT64 }));
  });

  it("setting marks already set is a no-op", () => {
    expectNoop(rec({ marks: BIT64 | 3n }), u({ setMask: BIT64 | 1n }));
  });

  it("clearing marks on a never-written conversation is a no-op and stays unwritten", () => {
    const n = expectNoop(undefined, u({ clearMask: 7n }));
    expect(n).toEqual(emptyRecord(K));
  });

  it("an update with nothing in it is a no-op", () => {
    expectNoop(rec({ marks: 9n, customMark: "x", labels: ["a"], settings: { pinned: true } }), u());
    expectNoop(undefined, u());
  });

  it("does not mutate the current record", () => {
    const cur = rec({ marks: 1n, labels: ["a"], settings: { pinned: false } });
    const snapshot = structuredClone(cur);
    applyUpdate(cur, u({ setMask: 2n, addLabels: ["b"], settings: { pinned: true, ex: "e" } }), T1);
    expect(cur).toEqual(snapshot);
  });
});

describe("applyUpdate: custom mark", () => {
  it("replaces the custom mark when present", () => {
    expect(expectChange(rec({ customMark: "old" }), u({ customMark: "new" })).customMark).toBe("new");
  });

  it("an empty custom mark removes it", () => {
    expect(expectChange(rec({ customMark: "old" }), u({ customMark: "" })).customMark).toBe("");
  });

  it("an absent custom mark leaves it alone", () => {
    const n = expectChange(rec({ customMark: "keep" }), u({ setMask: 1n }));
    expect(n.customMark).toBe("keep");
  });

  it("the same custom mark is a no-op", () => {
    expectNoop(rec({ customMark: "same" }), u({ customMark: "same" }));
    expectNoop(rec({ customMark: "" }), u({ customMark: "" }));
    expectNoop(undefined, u({ customMark: "" }));
  });
});

describe("applyUpdate: labels", () => {
  it("adds and sorts labels ascending", () => {
    const n = expectChange(rec({ labels: ["m"] }), u({ addLabels: ["z", "a", "B"] }));
    expect(n.labels).toEqual(["B", "a", "m", "z"]);
  });

  it("removes labels, ignoring ones not present", () => {
    const n = expectChange(rec({ labels: ["a", "b", "c"] }), u({ removeLabels: ["b", "zz"] }));
    expect(n.labels).toEqual(["a", "c"]);
  });

  it("adds and removes in one update", () => {
    const n = expectChange(rec({ labels: ["a", "b"] }), u({ addLabels: ["d", "c"], removeLabels: ["a"] }));
    expect(n.labels).toEqual(["b", "c", "d"]);
  });

  it("the same labels in any order are a no-op", () => {
    expectNoop(rec({ labels: ["a", "b", "c"] }), u({ addLabels: ["c", "a", "b"] }));
    expectNoop(rec({ labels: ["a", "b", "c"] }), u({ addLabels: ["b"] }));
    expectNoop(rec({ labels: ["a", "b"] }), u({ removeLabels: ["x", "y"] }));
    expectNoop(rec({ labels: [] }), u({ removeLabels: ["x"] }));
  });

  it("duplicates in add_labels do not duplicate labels", () => {
    const n = expectChange(rec(), u({ addLabels: ["x", "x"] }));
    expect(n.labels).toEqual(["x"]);
  });
});

describe("applyUpdate: settings", () => {
  it("merges only present fields and keeps absent ones absent", () => {
    const cur = rec({ settings: { pinned: true, ex: "e1" } });
    const n = expectChange(cur, u({ settings: { receiveOption: 2 } }));
    expect(n.settings).toEqual({ pinned: true, ex: "e1", receiveOption: 2 });
    expect("privateChat" in n.settings).toBe(false);
    expect("burnDurationSeconds" in n.settings).toBe(false);
    expect("attachedInfo" in n.settings).toBe(false);
  });

  it("overwrites a present field, including to false, 0 and empty string", () => {
    const cur = rec({ settings: { pinned: true, privateChat: true, burnDurationSeconds: 30, attachedInfo: "a", ex: "e" } });
    const n = expectChange(cur, u({ settings: { pinned: false, burnDurationSeconds: 0, attachedInfo: "" } }));
    expect(n.settings).toEqual({ pinned: false, privateChat: true, burnDurationSeconds: 0, attachedInfo: "", ex: "e" });
  });

  it("setting a field to false on a conversation without it is a change (presence)", () => {
    const n = expectChange(rec(), u({ settings: { pinned: false } }));
    expect(n.settings).toEqual({ pinned: false });
    const m = expectChange(undefined, u({ settings: { privateChat: false } }));
    expect(m.settings).toEqual({ privateChat: false });
    expect(m.version).toBe(1n);
  });

  it("the same settings are a no-op", () => {
    const settings: Settings = { pinned: true, receiveOption: 3, privateChat: false, burnDurationSeconds: 10, attachedInfo: "i", ex: "" };
    expectNoop(rec({ settings }), u({ settings: { ...settings } }));
    expectNoop(rec({ settings }), u({ settings: { receiveOption: 3, ex: "" } }));
    expectNoop(rec({ settings }), u({ settings: {} }));
  });

  it("does not share the settings object with the current record", () => {
    const cur = rec({ settings: { pinned: true } });
    const n = expectChange(cur, u({ settings: { ex: "x" } }));
    expect(n.settings).not.toBe(cur.settings);
    expect(cur.settings).toEqual({ pinned: true });
  });
});

describe("applyUpdate: version and time", () => {
  it("bumps the version by exactly one per effective change and leaves position to the store", () => {
    let cur: ConversationRecord | undefined;
    for (let i = 1; i <= 3; i++) {
      const r = applyUpdate(cur, u({ setMask: 1n << BigInt(i) }), T0 + i);
      expect(r.changed).toBe(true);
      expect(r.next.version).toBe(BigInt(i));
      expect(r.next.updateTimeMs).toBe(T0 + i);
      expect(r.next.position).toBe(cur?.position ?? 0n);
      cur = r.next;
    }
    expect(cur?.marks).toBe(14n);
  });

  it("a combined update is one version", () => {
    const n = expectChange(rec(), u({ setMask: 1n, customMark: "c", addLabels: ["l"], settings: { pinned: true } }));
    expect(n.version).toBe(8n);
    expect(n).toMatchObject({ marks: 1n, customMark: "c", labels: ["l"], settings: { pinned: true }, position: 42n });
  });
});

describe("isMarked", () => {
  it("is true for any mark, custom mark or label", () => {
    expect(isMarked({ marks: 0n, customMark: "", labels: [] })).toBe(false);
    expect(isMarked({ marks: 1n, customMark: "", labels: [] })).toBe(true);
    expect(isMarked({ marks: BIT64, customMark: "", labels: [] })).toBe(true);
    expect(isMarked({ marks: 0n, customMark: "c", labels: [] })).toBe(true);
    expect(isMarked({ marks: 0n, customMark: "", labels: ["l"] })).toBe(true);
  });

  it("settings alone do not count", () => {
    expect(isMarked(rec({ settings: { pinned: true, receiveOption: 2, ex: "x" } }))).toBe(false);
  });

  it("follows applyUpdate", () => {
    const a = expectChange(undefined, u({ setMask: 4n }));
    expect(isMarked(a)).toBe(true);
    const b = expectChange(a, u({ clearMask: 4n }));
    expect(isMarked(b)).toBe(false);
    expect(b.version).toBe(2n);
  });
});

describe("applyUpdate: vendor conversation ID", () => {
  it("sets, replaces and removes it, each a change; the same ID again or an absent field is no change", () => {
    const set = applyUpdate(undefined, u({ vendorConversationId: "si_alice_bob" }), T1);
    expect([set.changed, set.next.vendorConversationId, set.next.version, isMarked(set.next)]).toEqual([true, "si_alice_bob", 1n, false]);
    const same = applyUpdate(set.next, u({ vendorConversationId: "si_alice_bob" }), T1);
    expect(same.changed).toBe(false);
    const other = applyUpdate(set.next, u({ vendorConversationId: "custom" }), T1);
    expect([other.changed, other.next.vendorConversationId]).toEqual([true, "custom"]);
    const untouched = applyUpdate(other.next, u({ setMask: 1n }), T1);
    expect(untouched.next.vendorConversationId).toBe("custom");
    const removed = applyUpdate(other.next, u({ vendorConversationId: "" }), T1);
    expect([removed.changed, "vendorConversationId" in removed.next]).toEqual([true, false]);
    expect(applyUpdate(undefined, u({ vendorConversationId: "" }), T1).changed).toBe(false);
  });
});
