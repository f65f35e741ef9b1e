// UserSig verification against Tencent's own generator (npm tls-sig-api-v2), config and pure translation.
import { createRequire } from "node:module";
import { deflateSync, inflateSync } from "node:zlib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ConversationType, type ConversationUpdate } from "../../gen/convmark/v1/mark_service_pb.js";
import { MarkItemSchema } from "../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { ConfigError } from "../../src/config.js";
import { tencentConfigFromEnv } from "../../src/dialects/tencent/config.js";
import { TencentCode } from "../../src/dialects/tencent/errors.js";
import { planItem } from "../../src/dialects/tencent/translate.js";
import { decodeUserSig, genUserSig, verifyUserSig } from "../../src/dialects/tencent/usersig.js";

interface TlsApi {
  genUserSig(identifier: string, expire: number): string;
  genPrivateMapKey(identifier: string, expire: number, roomId: number, privilegeMap: number): string;
}
const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as { Api: new (sdkappid: number, key: string) => TlsApi };

const APPID = 1400000001;
const KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const api = new TLSSigAPIv2.Api(APPID, KEY);
const nowS = () => Math.floor(Date.now() / 1000);
const params = (over: Partial<{ sdkAppId: number; identifier: string; secretKey: string; nowSeconds: number }> = {}) => ({
  sdkAppId: APPID,
  identifier: "administrator",
  secretKey: KEY,
  nowSeconds: nowS(),
  ...over,
});

// Re-encodes a UserSig after editing its JSON document (keeps it parseable, breaks the HMAC).
function reencode(sig: string, edit: (doc: Record<string, unknown>) => void): string {
  const raw = Buffer.from(sig.replace(/\*/g, "+").replace(/-/g, "/").replace(/_/g, "="), "base64");
  const doc = JSON.parse(inflateSync(raw).toString()) as Record<string, unknown>;
  edit(doc);
  return deflateSync(Buffer.from(JSON.stringify(doc))).toString("base64").replace(/\+/g, "*").replace(/\//g, "-").replace(/=/g, "_");
}

afterEach(() => vi.restoreAllMocks());

describe("UserSig verification", () => {
  it("accepts a UserSig made by Tencent's TLSSigAPIv2 and reads its claims", () => {
    const sig = api.genUserSig("administrator", 86400);
    const v = verifyUserSig(sig, params());
    expect(v.ok).toBe(true);
    if (v.ok) {
      expect(v.claims.identifier).toBe("administrator");
      expect(v.claims.sdkAppId).toBe(APPID);
      expect(v.claims.expire).toBe(86400);
      expect(Math.abs(v.claims.time - nowS())).toBeLessThan(5);
    }
  });

  it("accepts a sig carrying TLS.userbuf (genPrivateMapKey), whose HMAC covers the userbuf", () => {
    const sig = api.genPrivateMapKey("administrator", 3600, 10000, 255);
    const decoded = decodeUserSig(sig);
    expect(typeof decoded === "object" && decoded.claims.userbuf).toBeTruthy();
    expect(verifyUserSig(sig, params()).ok).toBe(true);
    const changed = reencode(sig, (d) => (d["TLS.userbuf"] = Buffer.from("other").toString("base64")));
    expect(verifyUserSig(changed, params())).toMatchObject({ ok: false, code: TencentCode.SigVerify });
  });

  it("genUserSig produces exactly what Tencent's package produces for the same second", () => {
    vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_123);
    const theirs = api.genUserSig("administrator", 600);
    expect(genUserSig(APPID, KEY, "administrator", 600, 1_700_000_000)).toBe(theirs);
  });

  it("70001 once time + expire is reached, not before", () => {
    vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    const sig = api.genUserSig("administrator", 100);
    vi.restoreAllMocks();
    expect(verifyUserSig(sig, params({ nowSeconds: 1_700_000_099 })).ok).toBe(true);
    expect(verifyUserSig(sig, params({ nowSeconds: 1_700_000_100 }))).toMatchObject({ ok: false, code: TencentCode.SigExpired });
  });

  it("70013 for a sig made for another identifier", () => {
    const sig = api.genUserSig("someone_else", 86400);
    expect(verifyUserSig(sig, params())).toMatchObject({ ok: false, code: TencentCode.SigIdentifierMismatch });
  });

  it("70014 for a sig made for another SDKAppID", () => {
    const sig = new TLSSigAPIv2.Api(1400000002, KEY).genUserSig("administrator", 86400);
    expect(verifyUserSig(sig, params())).toMatchObject({ ok: false, code: TencentCode.SigSdkAppIdMismatch });
  });

  it("70009 for a sig made with another key", () => {
    const sig = new TLSSigAPIv2.Api(APPID, "another-secret-key").genUserSig("administrator", 86400);
    expect(verifyUserSig(sig, params())).toMatchObject({ ok: false, code: TencentCode.SigVerify });
  });

  it("70009 for a tampered sig (expire extended, HMAC kept)", () => {
    const sig = api.genUserSig("administrator", 1);
    const tampered = reencode(sig, (d) => (d["TLS.expire"] = 999999999));
    expect(verifyUserSig(tampered, params())).toMatchObject({ ok: false, code: TencentCode.SigVerify });
    const flipped = reencode(sig, (d) => {
      const s = d["TLS.sig"] as string;
      d["TLS.sig"] = (s[0] === "A" ? "B" : "A") + s.slice(1);
    });
    expect(verifyUserSig(flipped, params())).toMatchObject({ ok: false, code: TencentCode.SigVerify });
  });

  it("70003 for strings that are not UserSigs", () => {
    const sig = api.genUserSig("administrator", 86400);
    const cases = [
      "not a sig!",
      "abc",
      sig.slice(0, 40),
      Buffer.from("plain text").toString("base64"),
      reencode(sig, (d) => (d["TLS.ver"] = "1.0")),
      reencode(sig, (d) => delete d["TLS.sig"]),
      reencode(sig, (d) => (d["TLS.time"] = "soon")),
      "x".repeat(9000),
    ];
    for (const c of cases) expect(verifyUserSig(c, params()), c.slice(0, 30)).toMatchObject({ ok: false, code: TencentCode.SigParse });
  });
});

describe("tencentConfigFromEnv", () => {
  it("defaults: unconfigured, admin 'administrator', 200 calls/s", () => {
    expect(tencentConfigFromEnv({})).toEqual({ adminIdentifiers: ["administrator"], rateLimitPerSecond: 200 });
    expect(tencentConfigFromEnv({ TENCENT_SDKAPPID: "", TENCENT_SECRET_KEY: "" })).toEqual({ adminIdentifiers: ["administrator"], rateLimitPerSecond: 200 });
  });

  it("reads every variable", () => {
    expect(
      tencentConfigFromEnv({
        TENCENT_SDKAPPID: "1400000001",
        TENCENT_SECRET_KEY: "k",
        TENCENT_ADMIN_IDENTIFIERS: " admin1, admin2 ,,",
        TENCENT_RATE_LIMIT_PER_SECOND: "5",
      }),
    ).toEqual({ sdkAppId: 1400000001, secretKey: "k", adminIdentifiers: ["admin1", "admin2"], rateLimitPerSecond: 5 });
  });

  it.each([
    [{ TENCENT_SDKAPPID: "abc" }, /TENCENT_SDKAPPID/],
    [{ TENCENT_SDKAPPID: "-5" }, /TENCENT_SDKAPPID/],
    [{ TENCENT_SDKAPPID: "4294967296" }, /TENCENT_SDKAPPID/],
    [{ TENCENT_SDKAPPID: "0" }, /TENCENT_SDKAPPID/],
    [{ TENCENT_ADMIN_IDENTIFIERS: " , " }, /TENCENT_ADMIN_IDENTIFIERS/],
    [{ TENCENT_RATE_LIMIT_PER_SECOND: "0" }, /TENCENT_RATE_LIMIT_PER_SECOND/],
    [{ TENCENT_RATE_LIMIT_PER_SECOND: "fast" }, /TENCENT_RATE_LIMIT_PER_SECOND/],
  ])("rejects %j", (env, msg) => {
    expect(() => tencentConfigFromEnv(env)).toThrow(ConfigError);
    expect(() => tencentConfigFromEnv(env)).toThrow(msg);
  });
});

describe("planItem", () => {
  const item = (init: Parameters<typeof create<typeof MarkItemSchema>>[1]) => create(MarkItemSchema, init);

  it("OptType 1 uses only SetMark/ClearMark, 2 only CustomMark, 3 both", () => {
    const base = { contactItem: { type: 1, toAccount: "peer" }, setMark: [1n, 33n, 1n], clearMark: [2n], customMark: "c" };
    const u1 = planItem("me", item({ optType: 1, ...base }));
    expect(u1).toMatchObject({ setMarks: [1, 33], clearMarks: [2] });
    expect((u1 as ConversationUpdate).customMark).toBeUndefined();
    expect(u1).toMatchObject({ key: { ownerUserId: "me", type: ConversationType.DIRECT, conversationId: "peer" } });
    expect(planItem("me", item({ optType: 2, ...base, setMark: [99n] }))).toMatchObject({ setMarks: [], clearMarks: [], customMark: "c" });
    expect(planItem("me", item({ optType: 3, ...base }))).toMatchObject({ setMarks: [1, 33], clearMarks: [2], customMark: "c" });
  });

  it("group conversations use ToGroupId; an absent CustomMark leaves the custom mark alone", () => {
    const u = planItem("me", item({ optType: 2, contactItem: { type: 2, toGroupId: "g1", toAccount: "ignored" } }));
    expect(u).toMatchObject({ key: { type: ConversationType.GROUP, conversationId: "g1" } });
    expect((u as ConversationUpdate).customMark).toBeUndefined();
  });

  it.each([
    [{ contactItem: { type: 1, toAccount: "p" } }, /OptType is required/],
    [{ optType: 4, contactItem: { type: 1, toAccount: "p" } }, /OptType must be/],
    [{ optType: 1 }, /ContactItem is required/],
    [{ optType: 1, contactItem: { toAccount: "p" } }, /Type is required/],
    [{ optType: 1, contactItem: { type: 3, toAccount: "p" } }, /Type must be/],
    [{ optType: 1, contactItem: { type: 1, toGroupId: "g" } }, /To_Account is required/],
    [{ optType: 1, contactItem: { type: 2, toAccount: "p" } }, /ToGroupId is required/],
    [{ optType: 1, contactItem: { type: 1, toAccount: "p" }, setMark: [65n] }, /SetMark: bit 65/],
    [{ optType: 3, contactItem: { type: 1, toAccount: "p" }, clearMark: [0n] }, /ClearMark: bit 0/],
    [{ optType: 1, contactItem: { type: 1, toAccount: "p" }, setMark: [3n], clearMark: [3n] }, /both SetMark and ClearMark/],
    [{ optType: 2, contactItem: { type: 1, toAccount: "p" }, customMark: "é".repeat(129) }, /258 bytes/],
  ])("50002 case %# (%s)", (init, msg) => {
    const r = planItem("me", item(init));
    expect(r).toMatchObject({ code: TencentCode.BadParameter });
    expect((r as { info: string }).info).toMatch(msg);
  });

  it("256-byte CustomMark is accepted", () => {
    expect(planItem("me", item({ optType: 2, contactItem: { type: 1, toAccount: "p" }, customMark: "é".repeat(128) }))).toMatchObject({
      customMark: "é".repeat(128),
    });
  });
});
