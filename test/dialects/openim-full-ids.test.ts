/**
 * get_full_conversation_ids in one walk of the owner's feed (src/dialects/openim/reads.ts) against
 * the two-walk definition it replaced (the head from a full incremental read, then every
 * conversation through the list), on seeded random data: the same IDs in the same order (most
 * recently changed first), the same version and versionID.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationType, MarkService, ReceiveOption } from "../../gen/convmark/v1/mark_service_pb.js";
import { GetFullConversationIdsRequestSchema, GetIncrementalConversationsRequestSchema } from "../../gen/vendor/openim/v1/conversation_service_pb.js";
import { listAll } from "../../src/dialects/list-all.js";
import { conversationIdOf, createReadOps } from "../../src/dialects/openim/reads.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { prng as rng } from "../support/prng.js";


const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

function setup() {
  const store = openSqliteStore({ path: ":memory:", limits: DEFAULT_LIMITS });
  closers.push(() => store.close());
  const marks = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, createMarkService({ store, limits: DEFAULT_LIMITS }))));
  const reads = createReadOps(marks);
  /** The definition before the one-walk version. */
  async function reference(userId: string) {
    const head = await reads.incremental(create(GetIncrementalConversationsRequestSchema, { userId }));
    if ("errCode" in head) return head;
    const ids = (await listAll(marks, userId)).map(conversationIdOf);
    return { version: head.version, versionId: head.versionId, equal: false, conversationIds: ids };
  }
  const oneWalk = (userId: string) => reads.fullIds(create(GetFullConversationIdsRequestSchema, { userId }));
  return { marks, reference, oneWalk };
}

/** Random updates and deletes of `owner`'s conversations (and some of another owner's). */
async function churn(marks: ReturnType<typeof setup>["marks"], rand: () => number, owner: string, keys: number, ops: number) {
  for (let n = 0; n < ops; ) {
    const batch = 1 + Math.floor(rand() * 40);
    const who = rand() < 0.15 ? "other" : owner;
    const pick = () => {
      const i = Math.floor(rand() * keys);
      return { ownerUserId: who, type: i % 3 === 0 ? ConversationType.GROUP : ConversationType.DIRECT, conversationId: `c${i}` };
    };
    if (rand() < 0.2) {
      await marks.deleteConversations({ keys: Array.from({ length: Math.min(batch, 5) }, pick) });
    } else {
      const seen = new Set<string>();
      const updates = Array.from({ length: batch }, () => {
        const key = pick();
        const r = rand();
        return {
          key,
          settings: { pinned: r < 0.5, receiveOption: r < 0.3 ? ReceiveOption.RECEIVE_SILENTLY : ReceiveOption.RECEIVE },
          ...(rand() < 0.3 ? { vendorConversationId: rand() < 0.2 ? "" : `custom-${Math.floor(rand() * 1e6)}` } : {}),
        };
      }).filter((u) => !seen.has(`${u.key.type}/${u.key.conversationId}`) && seen.add(`${u.key.type}/${u.key.conversationId}`));
      await marks.updateConversations({ updates });
    }
    n += batch;
  }
}

describe("OpenIM get_full_conversation_ids in one feed walk", () => {
  it("equals the head-then-list definition on random data, round after round", async () => {
    const { marks, reference, oneWalk } = setup();
    const rand = rng(12);
    expect(await oneWalk("o")).toEqual(await reference("o"));
    for (let round = 0; round < 8; round++) {
      await churn(marks, rand, "o", 80, 150);
      const got = await oneWalk("o");
      expect((got as { version: bigint }).version).toBeGreaterThan(0n);
      expect(got).toEqual(await reference("o"));
      expect(await oneWalk("other")).toEqual(await reference("other"));
    }
  });

  it("the same over several feed pages (more than 1000 changes)", async () => {
    const { marks, reference, oneWalk } = setup();
    const rand = rng(7);
    await churn(marks, rand, "big", 2600, 4000);
    const got = await oneWalk("big");
    expect(got).toEqual(await reference("big"));
    expect((got as { conversationIds: string[] }).conversationIds.length).toBeGreaterThan(1000);
  });

  it("an empty userID is ArgsError", async () => {
    const { oneWalk } = setup();
    expect(await oneWalk("")).toMatchObject({ errCode: 1001 });
  });
});
