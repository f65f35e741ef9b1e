// Unit tests of the OpenIM dialect's pure parts: config, conversation IDs, request planning, tokens.
import { create } from "@bufbuild/protobuf";
import { decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import { openimConfigFromEnv } from "../../src/dialects/openim/config.js";
import { isOpenimError, OpenimCode, openimError } from "../../src/dialects/openim/errors.js";
import { mintToken, verifyToken } from "../../src/dialects/openim/token.js";
import {
  otherParticipant,
  planSetConversations,
  singleChatConversationId,
  type SetPlan,
} from "../../src/dialects/openim/translate.js";
import { SetConversationsRequestSchema, type SetConversationsRequest } from "../../gen/vendor/openim/v1/conversation_service_pb.js";

const SECRET = "openIM123";
const NOW = Date.UTC(2025, 0, 1);

function req(init: Parameters<typeof create<typeof SetConversationsRequestSchema>>[1]): SetConversationsRequest {
  return create(SetConversationsRequestSchema, init);
}

function plan(r: SetConversationsRequest, maxUserIds = 1000): SetPlan {
  const p = planSetConversations(r, { maxUserIds });
  if (isOpenimError(p)) throw new Error(`unexpected error: ${p.errDlt}`);
  return p;
}

function planError(r: SetConversationsRequest, maxUserIds = 1000) {
  const p = planSetConversations(r, { maxUserIds });
  if (!isOpenimError(p)) throw new Error("expected an error");
  return p;
}

describe("openimConfigFromEnv", () => {
  it("defaults: unconfigured, imAdmin, 90 days, 1000 user IDs, no rate limit", () => {
    expect(openimConfigFromEnv({})).toEqual({ adminUserIds: ["imAdmin"], tokenTtlSeconds: 7_776_000, maxUserIds: 1000, rateLimitPerSecond: 0, secretFailuresPerMinute: 10 });
  });
  it("reads every variable", () => {
    const c = openimConfigFromEnv({
      OPENIM_SECRET: "s3cret",
      OPENIM_ADMIN_USER_IDS: " a, b ,,a",
      OPENIM_TOKEN_TTL_SECONDS: "60",
      OPENIM_MAX_USER_IDS: "5",
      OPENIM_RATE_LIMIT_PER_SECOND: "3",
      OPENIM_SECRET_FAILURES_PER_MINUTE: "4",
    });
    expect(c).toEqual({ secret: "s3cret", adminUserIds: ["a", "b"], tokenTtlSeconds: 60, maxUserIds: 5, rateLimitPerSecond: 3, secretFailuresPerMinute: 4 });
  });
  it("an empty secret is unconfigured", () => {
    expect(openimConfigFromEnv({ OPENIM_SECRET: "" }).secret).toBeUndefined();
  });
  it.each([
    ["OPENIM_TOKEN_TTL_SECONDS", "ninety"],
    ["OPENIM_TOKEN_TTL_SECONDS", "0"],
    ["OPENIM_TOKEN_TTL_SECONDS", "-5"],
    ["OPENIM_MAX_USER_IDS", "20001"],
    ["OPENIM_MAX_USER_IDS", "1.5"],
    ["OPENIM_RATE_LIMIT_PER_SECOND", "x"],
    ["OPENIM_ADMIN_USER_IDS", " , "],
    ["OPENIM_SECRET_FAILURES_PER_MINUTE", "0"],
  ])("%s=%j is a ConfigError naming the variable", (name, value) => {
    expect(() => openimConfigFromEnv({ [name]: value })).toThrow(ConfigError);
    expect(() => openimConfigFromEnv({ [name]: value })).toThrow(name);
  });
});

describe("errors", () => {
  it("errDlt has the seed's format", () => {
    expect(openimError(OpenimCode.RecordNotFoundError)).toEqual({ errCode: 1004, errMsg: "RecordNotFoundError", errDlt: ": [1004]RecordNotFoundError" });
    expect(openimError(OpenimCode.ArgsError, "userIDs is empty").errDlt).toBe("userIDs is empty: [1001]ArgsError");
  });
});

describe("conversation IDs", () => {
  it("si_ sorts the two user IDs (the seed's example)", () => {
    expect(singleChatConversationId("6965946400", "4365007572")).toBe("si_4365007572_6965946400");
    expect(singleChatConversationId("4365007572", "6965946400")).toBe("si_4365007572_6965946400");
  });
  it("sorts byte-wise over UTF-8 like Go's sort.Strings", () => {
    // U+FF5E (3 UTF-8 bytes, EF BD 9E) sorts before U+1F600 (F0 9F 98 80) in UTF-8, after it in UTF-16.
    expect(singleChatConversationId("\u{1F600}", "\uFF5E")).toBe("si_\uFF5E_\u{1F600}");
  });
  it("finds the other participant, also with underscores in IDs", () => {
    expect(otherParticipant("si_4365007572_6965946400", "4365007572")).toBe("6965946400");
    expect(otherParticipant("si_4365007572_6965946400", "6965946400")).toBe("4365007572");
    expect(otherParticipant("si_a_b_c_d", "c_d")).toBe("a_b");
    expect(otherParticipant("si_u_u", "u")).toBe("u");
    expect(otherParticipant("si_4365007572_6965946400", "1")).toBeUndefined();
    expect(otherParticipant("sg_4365007572_6965946400", "4365007572")).toBeUndefined();
    expect(otherParticipant("si_6965946400_4365007572", "4365007572")).toBeUndefined();
    // set_conversations takes either order.
    expect(otherParticipant("si_6965946400_4365007572", "4365007572", "either")).toBe("6965946400");
    expect(otherParticipant("si_u_", "u", "either")).toBeUndefined();
  });
});

describe("planSetConversations", () => {
  const seed = () =>
    req({
      userIds: ["6965946400"],
      conversation: {
        conversationId: "si_4365007572_6965946400",
        conversationType: 1,
        userId: "4365007572",
        groupId: "",
        recvMsgOpt: 0,
        attachedInfo: "attached",
        isPinned: false,
        isPrivateChat: true,
        ex: "",
        burnDuration: 30,
      },
    });

  it("translates the seed's example", () => {
    const p = plan(seed());
    expect(p.owners).toEqual(["6965946400"]);
    expect(p.updates).toEqual([
      {
        key: { ownerUserId: "6965946400", type: 1, conversationId: "4365007572" },
        settings: { pinned: false, receiveOption: 1, privateChat: true, burnDurationSeconds: 30, attachedInfo: "attached", ex: "" },
        vendorConversationId: "si_4365007572_6965946400",
      },
    ]);
    expect(p.userIdsToCheck).toEqual(["6965946400", "4365007572"]);
  });

  it("only the fields present", () => {
    const p = plan(req({ userIds: ["6965946400"], conversation: { conversationId: "si_4365007572_6965946400", conversationType: 1, userId: "4365007572", isPinned: true } }));
    expect(p.updates[0]!.settings).toEqual({ pinned: true });
  });

  it("both participants of a single chat: each owner gets the other as peer; duplicates dropped", () => {
    const p = plan(req({ userIds: ["B", "A", "B"], conversation: { conversationId: "si_A_B", conversationType: 1, userId: "B", isPinned: true } }));
    expect(p.updates.map((u) => [u.key.ownerUserId, u.key.conversationId])).toEqual([
      ["B", "A"],
      ["A", "B"],
    ]);
  });

  it("group chat: every owner, conversation = groupID; isPrivateChat ignored as OpenIM does", () => {
    const p = plan(req({ userIds: ["u1", "u2"], conversation: { conversationId: "sg_g1", conversationType: 3, groupId: "g1", recvMsgOpt: 2, isPrivateChat: true } }));
    expect(p.groupId).toBe("g1");
    expect(p.updates).toEqual([
      { key: { ownerUserId: "u1", type: 2, conversationId: "g1" }, settings: { receiveOption: 3 }, vendorConversationId: "sg_g1" },
      { key: { ownerUserId: "u2", type: 2, conversationId: "g1" }, settings: { receiveOption: 3 }, vendorConversationId: "sg_g1" },
    ]);
  });

  it("keeps the conversationID verbatim for every owner (custom and unsorted ones too), none when empty; bounds its length", () => {
    const ids = (conversationId: string) =>
      plan(req({ userIds: ["B", "A"], conversation: { conversationId, conversationType: 1, userId: "B", isPinned: true } })).updates.map((u) => u.vendorConversationId);
    expect(ids("si_B_A")).toEqual(["si_B_A", "si_B_A"]);
    expect(ids("my chat")).toEqual(["my chat", "my chat"]);
    expect(ids("")).toEqual([undefined, undefined]);
    const long = planSetConversations(req({ userIds: ["A"], conversation: { conversationId: "x".repeat(1025), conversationType: 1, userId: "B" } }), { maxUserIds: 10 });
    expect(long).toMatchObject({ errCode: 1001, errDlt: expect.stringContaining("conversationID is 1025 bytes, at most 1024 allowed") });
  });

  it("recvMsgOpt 1 is DO_NOT_RECEIVE", () => {
    const p = plan(req({ userIds: ["u1"], conversation: { conversationId: "sg_g1", conversationType: 3, groupId: "g1", recvMsgOpt: 1 } }));
    expect(p.updates[0]!.settings).toEqual({ receiveOption: 2 });
  });

  it("ignored OpenIM fields do not become settings", () => {
    const p = plan(req({ userIds: ["u1"], conversation: { conversationId: "sg_g1", conversationType: 3, groupId: "g1", groupAtType: 1, isMsgDestruct: true, msgDestructTime: 5n, minSeq: 1n, maxSeq: 2n } }));
    expect(p.updates[0]!.settings).toEqual({});
  });

  it.each([
    ["no userIDs", req({ conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g" } }), { api: true }],
    ["no conversation", req({ userIds: ["u"] }), { api: true }],
    ["conversationType 0", req({ userIds: ["u"], conversation: { conversationId: "x" } }), { api: true }],
    ["type 1 without userID", req({ userIds: ["u"], conversation: { conversationId: "si_u_v", conversationType: 1 } }), { api: true }],
    ["type 3 without groupID", req({ userIds: ["u"], conversation: { conversationId: "sg_g", conversationType: 3 } }), { api: true }],
    ["type 2", req({ userIds: ["u"], conversation: { conversationId: "g_g", conversationType: 2, groupId: "g" } }), "conversationType 2 is not supported"],
    ["type 4", req({ userIds: ["u"], conversation: { conversationId: "sn_u_v", conversationType: 4, userId: "v" } }), "conversationType 4 is not supported"],
    ["recvMsgOpt 3", req({ userIds: ["u"], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g", recvMsgOpt: 3 } }), "recvMsgOpt 3 is invalid"],
    ["recvMsgOpt -1", req({ userIds: ["u"], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g", recvMsgOpt: -1 } }), "recvMsgOpt -1 is invalid"],
    ["negative burnDuration", req({ userIds: ["u"], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g", burnDuration: -1 } }), "burnDuration"],
    ["ex too long", req({ userIds: ["u"], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g", ex: "x".repeat(4097) } }), "ex is 4097 bytes"],
    ["empty user ID", req({ userIds: ["u", ""], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g" } }), "empty user ID"],
    ["user ID too long", req({ userIds: ["u".repeat(257)], conversation: { conversationId: `sg_g`, conversationType: 3, groupId: "g" } }), "257 bytes"],
    ["lone surrogate", req({ userIds: ["\ud800"], conversation: { conversationId: "sg_g", conversationType: 3, groupId: "g" } }), "not valid UTF-8"],
    ["group ID too long", req({ userIds: ["u"], conversation: { conversationId: `sg_${"g".repeat(257)}`, conversationType: 3, groupId: "g".repeat(257) } }), "groupID is 257 bytes"],
  ] as [string, ReturnType<typeof req>, string | { api: true }][])("%s → ArgsError", (_name, r, detail) => {
    const e = planError(r);
    expect(e.errCode).toBe(1001);
    expect(e.errMsg).toBe("ArgsError");
    // SetConversationsReq.Check() failures are API-layer errors: errDlt is empty, as v3.8.3 prints them.
    if (typeof detail !== "string") expect(e.errDlt).toBe("");
    else {
      expect(e.errDlt).toContain(detail);
      expect(e.errDlt.endsWith(": [1001]ArgsError")).toBe(true);
    }
  });

  it("conversationID is never refused: it decides the key where it parses, else userID/groupID do", () => {
    const keys = (r: ReturnType<typeof req>) => plan(r).updates.map((u) => u.key);
    // Unsorted si_: the same chat for both participants; an owner outside it gets the request's userID.
    expect(keys(req({ userIds: ["v", "u", "w"], conversation: { conversationId: "si_v_u", conversationType: 1, userId: "u" } }))).toEqual([
      { ownerUserId: "v", type: 1, conversationId: "u" },
      { ownerUserId: "u", type: 1, conversationId: "v" },
      { ownerUserId: "w", type: 1, conversationId: "u" },
    ]);
    expect(keys(req({ userIds: ["o"], conversation: { conversationId: "custom", conversationType: 1, userId: "p" } }))).toEqual([{ ownerUserId: "o", type: 1, conversationId: "p" }]);
    expect(keys(req({ userIds: ["o"], conversation: { conversationType: 1, userId: "p" } }))).toEqual([{ ownerUserId: "o", type: 1, conversationId: "p" }]);
    expect(keys(req({ userIds: ["o"], conversation: { conversationId: "sg_h", conversationType: 3, groupId: "g" } }))).toEqual([{ ownerUserId: "o", type: 2, conversationId: "h" }]);
    expect(keys(req({ userIds: ["o"], conversation: { conversationId: "room", conversationType: 3, groupId: "g" } }))).toEqual([{ ownerUserId: "o", type: 2, conversationId: "g" }]);
  });

  it("more distinct userIDs than allowed → ArgsError; duplicates do not count", () => {
    const conv = { conversationId: "sg_g", conversationType: 3, groupId: "g" };
    expect(planError(req({ userIds: ["a", "b", "c"], conversation: conv }), 2).errDlt).toContain("3 distinct user IDs, at most 2");
    expect(plan(req({ userIds: ["a", "b", "a", "b"], conversation: conv }), 2).owners).toEqual(["a", "b"]);
  });
});

describe("tokens", () => {
  it("mints OpenIM's claims with HS256", async () => {
    const t = await mintToken(SECRET, "imAdmin", 10, NOW, 7_776_000);
    expect(decodeProtectedHeader(t)).toEqual({ alg: "HS256", typ: "JWT" });
    const now = NOW / 1000;
    expect(decodeJwt(t)).toEqual({ UserID: "imAdmin", PlatformID: 10, exp: now + 7_776_000, nbf: now - 300, iat: now });
    expect(await verifyToken(t, SECRET, NOW)).toEqual({ userId: "imAdmin", platformId: 10, issuedAt: now, expiresAt: now + 7_776_000, notBefore: now - 300 });
  });

  const sign = (claims: Record<string, unknown>, secret = SECRET, alg = "HS256") =>
    new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(new TextEncoder().encode(secret));
  const s = NOW / 1000;

  it.each([
    ["garbage", async () => "not-a-jwt", 1503],
    ["four segments", async () => "a.b.c.d", 1503],
    ["bad base64 JSON", async () => "eyJhbGciOiJIUzI1NiJ9.!!!.sig", 1503],
    ["UserID of the wrong type", async () => sign({ UserID: 5, exp: s + 60 }), 1503],
    ["expired", async () => sign({ UserID: "imAdmin", exp: s }), 1501],
    ["expired with a wrong signature (claims are checked first, as golang-jwt v4 does)", async () => sign({ UserID: "imAdmin", exp: s - 1 }, "other"), 1501],
    ["not valid yet", async () => sign({ UserID: "imAdmin", nbf: s + 60, exp: s + 120 }), 1504],
    ["issued in the future", async () => sign({ UserID: "imAdmin", iat: s + 60, exp: s + 120 }), 1505],
    ["wrong signature", async () => sign({ UserID: "imAdmin", exp: s + 60 }, "other"), 1505],
    ["HS512", async () => sign({ UserID: "imAdmin", exp: s + 60 }, SECRET, "HS512"), 1505],
    ["no UserID", async () => sign({ PlatformID: 10, exp: s + 60 }), 1507],
  ])("%s → %i", async (_name, make, code) => {
    const r = await verifyToken(await make(), SECRET, NOW);
    expect(isOpenimError(r) ? r.errCode : r).toBe(code);
  });
});
