/** Reads every conversation of one owner through MarkService, for the dialects' whole-list reads. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Conversation, ConversationFilterSchema, MarkService } from "../../gen/convmark/v1/mark_service_pb.js";

/** Upper bound of conversations one owner's read walks (1000 per MarkService page). */
const MAX_WALK_PAGES = 100;

/** Every conversation of `owner` matching `filter`, most recently changed first. */
export async function listAll(
  marks: Client<typeof MarkService>,
  owner: string,
  filter?: MessageInitShape<typeof ConversationFilterSchema>,
): Promise<Conversation[]> {
  const out: Conversation[] = [];
  let pageToken = "";
  for (let i = 0; i < MAX_WALK_PAGES; i++) {
    const page = await marks.listConversations({ ownerUserId: owner, pageSize: 1000, pageToken, ...(filter ? { filter } : {}) });
    out.push(...page.conversations);
    if (!page.nextPageToken) return out;
    pageToken = page.nextPageToken;
  }
  throw new Error(`more than ${MAX_WALK_PAGES * 1000} conversations for one owner`);
}
