/**
 * The `convmark` command line: the server (`serve`) and an operator's client for MarkService,
 * DirectoryService and health. Results go to stdout (tables, or JSON with --json), errors to stderr.
 * Exit codes: 0 ok, 1 a call or some items failed, 2 usage.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Group, IdResult } from "../../gen/convmark/v1/directory_service_pb.js";
import type { ConversationChange, ConversationKey, ConversationType, UpdateConversationsResponse } from "../../gen/convmark/v1/mark_service_pb.js";
import { parseMarkName } from "../domain/mark-names.js";
import { MAX_MARK, MIN_MARK } from "../domain/marks.js";
import type { Clients, Protocol } from "./client.js";
import { EXIT_FAILED, EXIT_USAGE, MAX_IMPORT_BATCH, PartialFailure, UsageError } from "./errors.js";
import type * as Heavy from "./heavy.js";

/** The heavy modules, loaded by act() before any command body runs. */
let L: typeof Heavy;

const DIRECT = 1 as ConversationType;
const GROUP = 2 as ConversationType;
const UNSPECIFIED = 0 as ConversationType;

function printLine(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
}

function printError(text: string): void {
  process.stderr.write(`convmark: ${text}\n`);
}

const jsonOpts = () => ({ registry: L.anyTypeRegistry });

// ---- argument parsers (each failure is a usage error, exit 2) ----

function parseType(text: string): ConversationType {
  switch (text.trim().toLowerCase()) {
    case "direct":
    case "c2c":
    case "1":
      return DIRECT;
    case "group":
    case "2":
      return GROUP;
    default:
      throw new InvalidArgumentError('must be "direct" or "group".');
  }
}

function parseMarks(text: string, previous: number[] = []): number[] {
  const out = [...previous];
  for (const part of text.split(",")) {
    if (part.trim() === "") continue;
    const m = parseMarkName(part);
    if (m === undefined || m < MIN_MARK || m > MAX_MARK) {
      throw new InvalidArgumentError(`"${part}" is not a mark: use star, unread, fold, hide or a number ${MIN_MARK}..${MAX_MARK}.`);
    }
    out.push(m);
  }
  return out;
}

function parsePositiveInt(max: number) {
  return (text: string): number => {
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new InvalidArgumentError(`must be an integer 1..${max}.`);
    return Number(text);
  };
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function marksArgs(list: string[]): number[] {
  try {
    return list.reduce<number[]>((acc, t) => parseMarks(t, acc), []);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

// ---- running an action ----

interface GlobalOptions {
  url: string;
  token?: string | undefined;
  protocol: Protocol;
  json?: true | undefined;
}

interface Context {
  clients: Clients;
  json: boolean;
}

/** Runs an action with clients for the global options; maps every failure to its exit code. */
async function act(cmd: { optsWithGlobals(): unknown }, fn: (ctx: Context) => Promise<void>): Promise<void> {
  const g = cmd.optsWithGlobals() as GlobalOptions;
  try {
    L = await import("./heavy.js");
    const clients = L.createClients({ url: g.url, token: g.token, protocol: g.protocol });
    await fn({ clients, json: g.json === true });
  } catch (e) {
    if (e instanceof UsageError) {
      printError(e.message);
      process.exitCode = EXIT_USAGE;
    } else if (e instanceof PartialFailure) {
      process.exitCode = EXIT_FAILED;
    } else {
      const err = L.ConnectError.from(e);
      printError(err.code === L.Code.Unavailable || err.code === L.Code.Unknown ? `${L.rpcErrorText(err)} (is convmark running at ${g.url}?)` : L.rpcErrorText(err));
      process.exitCode = EXIT_FAILED;
    }
  }
}

const key = (user: string, type: ConversationType, conversationId: string): ConversationKey =>
  ({ $typeName: "convmark.v1.ConversationKey", ownerUserId: user, type, conversationId });

/** One update; prints the result; a refused update is exit 1 with its status in words. */
async function update(ctx: Context, u: MessageInitShape<typeof L.ConversationUpdateSchema>): Promise<void> {
  const res: UpdateConversationsResponse = await ctx.clients.marks.updateConversations({ updates: [u], resultView: L.ResultView.FULL });
  const r = res.results[0];
  if (ctx.json) printLine(L.toJsonString(L.UpdateConversationsResponseSchema, res, jsonOpts()));
  if (!r || (r.status?.code ?? 0) !== 0) {
    if (!ctx.json) printError(L.statusText(r?.status));
    throw new PartialFailure("update failed");
  }
  if (!ctx.json && r.conversation) {
    printLine(L.table(L.CONVERSATION_HEADER, [L.conversationRow(r.conversation)]));
    printLine(r.changed ? "changed" : "unchanged (it already was so)");
  }
}

function changeLine(ch: ConversationChange, cursor: string): string {
  const c = ch.conversation;
  const k = c?.key;
  const when = c?.updateTime ? L.timestampDate(c.updateTime).toISOString() : "-";
  const what = ch.deleted
    ? "deleted"
    : `marks=${L.marksText(c?.marks ?? [])} custom=${JSON.stringify(c?.customMark ?? "")} labels=${(c?.labels ?? []).join(",") || "-"} pinned=${c?.settings?.pinned ? "yes" : "no"}`;
  return `${when}  ${k?.ownerUserId ?? "?"}  ${L.typeName(k?.type ?? UNSPECIFIED)}/${k?.conversationId ?? "?"}  v${c?.version ?? 0n}  ${what}  cursor=${cursor}`;
}

function idResultsOut(ctx: Context, results: IdResult[]): void {
  if (ctx.json) {
    printLine(JSON.stringify({ results: results.map((r) => L.toJson(L.IdResultSchema, r, jsonOpts())) }));
  } else {
    printLine(L.table(["ID", "RESULT", "CHANGED"], results.map((r) => [r.id, (r.status?.code ?? 0) === 0 ? "ok" : L.statusText(r.status), r.changed ? "yes" : "no"])));
  }
  if (results.some((r) => (r.status?.code ?? 0) !== 0)) throw new PartialFailure("some IDs failed");
}

function groupOut(ctx: Context, group: Group | undefined): void {
  if (!group) return;
  if (ctx.json) {
    printLine(L.toJsonString(L.GroupSchema, group, jsonOpts()));
    return;
  }
  printLine(
    L.table(
      ["GROUP", "STATE", "MEMBERS", "CREATED"],
      [[group.groupId, group.dismissed ? "dismissed" : "active", String(group.memberCount), group.createTime ? L.timestampDate(group.createTime).toISOString() : "-"]],
    ),
  );
  if (group.memberUserIds.length) printLine(`members: ${group.memberUserIds.join(", ")}`);
}

// ---- the program ----

export function buildProgram(): Command {
  const program = new Command()
    .name("convmark")
    .description("convmark: per-user conversation marks. `convmark serve` runs the server; every other command calls one.")
    .addOption(new Option("--url <url>", "the server's base URL").env("CONVMARK_URL").default("http://127.0.0.1:8080"))
    .addOption(new Option("--token <token>", "bearer token sent as `authorization: Bearer …`").env("CONVMARK_TOKEN"))
    .addOption(new Option("--protocol <protocol>", "wire protocol").choices(["grpc", "connect"] as const).default("grpc" as const))
    .option("--json", "print JSON (the proto JSON of the responses) instead of tables")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .addHelpText(
      "after",
      `
Mark names: star (1), unread (2), fold (3), hide (4); other marks by number 1..64.
Types: direct (a one-to-one chat, keyed by the peer's user ID) or group.
Exit codes: 0 ok, 1 a call or some items failed, 2 bad usage.

Examples:
  convmark serve
  convmark list alice --marks-any star,unread --all
  convmark set alice direct bob star 33
  convmark watch --user alice
  convmark export > backup.ndjson && convmark --url http://new:8080 import < backup.ndjson`,
    );

  program
    .command("serve")
    .description("run the convmark server (what `npm start` runs); configured from the environment, see README")
    .action(async () => {
      const { serve } = await import("../serve.js");
      await serve(process.env);
    });

  program
    .command("get")
    .description("show one conversation")
    .argument("<user>", "owner user ID")
    .argument("<type>", "direct or group", parseType)
    .argument("<conversation>", "conversation ID (peer user ID or group ID)")
    .action((user, type, conversationId, _o, cmd) =>
      act(cmd, async (ctx) => {
        const res = await ctx.clients.marks.getConversation({ key: key(user, type, conversationId) });
        if (ctx.json) printLine(L.toJsonString(L.ConversationSchema, res.conversation!, jsonOpts()));
        else printLine(L.conversationDetails(res.conversation!));
      }),
    );

  program
    .command("list")
    .description("list a user's conversations, newest change first")
    .argument("<user>", "owner user ID")
    .option("--marks-all <marks>", "only conversations with all these marks (comma-separated)", parseMarks)
    .option("--marks-any <marks>", "only conversations with at least one of these marks", parseMarks)
    .option("--marks-none <marks>", "only conversations with none of these marks", parseMarks)
    .option("--type <type>", "direct or group", parseType)
    .option("--label <label>", "only conversations with this label (repeat for any of several)", collect)
    .option("--pinned", "only pinned conversations")
    .option("--not-pinned", "only conversations that are not pinned")
    .option("--page-size <n>", "conversations per page (the server caps it)", parsePositiveInt(100_000))
    .option("--page-token <token>", "continue from a previous page's next page token")
    .option("--all", "follow every page to the end")
    .action((user, o, cmd) =>
      act(cmd, async (ctx) => {
        if (o.pinned && o.notPinned) throw new UsageError("--pinned and --not-pinned exclude each other");
        if (o.all && o.pageToken) throw new UsageError("--all starts at the first page; drop --page-token");
        const filter = {
          marksAll: o.marksAll ?? [],
          marksAny: o.marksAny ?? [],
          marksNone: o.marksNone ?? [],
          type: o.type ?? UNSPECIFIED,
          labelsAny: o.label ?? [],
          ...(o.pinned ? { pinned: true } : o.notPinned ? { pinned: false } : {}),
        };
        let pageToken = o.pageToken ?? "";
        const all = [];
        let next = "";
        do {
          const page = await ctx.clients.marks.listConversations({ ownerUserId: user, filter, pageSize: o.pageSize ?? 0, pageToken });
          all.push(...page.conversations);
          next = page.nextPageToken;
          pageToken = next;
        } while (o.all && next !== "");
        if (ctx.json) {
          printLine(
            JSON.stringify(L.toJson(L.ListConversationsResponseSchema, { $typeName: "convmark.v1.ListConversationsResponse", conversations: all, nextPageToken: next }, jsonOpts())),
          );
          return;
        }
        if (all.length === 0) printLine(`no conversations of ${user} match`);
        else printLine(L.table(L.CONVERSATION_HEADER, all.map(L.conversationRow)));
        if (next !== "") printLine(`more: --page-token ${next}`);
      }),
    );

  for (const [name, verb] of [
    ["set", "set"],
    ["clear", "clear"],
  ] as const) {
    program
      .command(name)
      .description(`${verb} marks on a conversation (names or numbers: star unread fold hide 5..64)`)
      .argument("<user>", "owner user ID")
      .argument("<type>", "direct or group", parseType)
      .argument("<conversation>", "conversation ID")
      .argument("<marks...>", "marks, e.g. star 33 or star,unread")
      .action((user, type, conversationId, marks, _o, cmd) =>
        act(cmd, async (ctx) => {
          const list = marksArgs(marks);
          await update(ctx, { key: key(user, type, conversationId), ...(verb === "set" ? { setMarks: list } : { clearMarks: list }) });
        }),
      );
  }

  const label = program.command("label").description("add or remove labels");
  for (const verb of ["add", "remove"] as const) {
    label
      .command(verb)
      .description(`${verb} labels of a conversation`)
      .argument("<user>", "owner user ID")
      .argument("<type>", "direct or group", parseType)
      .argument("<conversation>", "conversation ID")
      .argument("<labels...>", "labels")
      .action((user, type, conversationId, labels, _o, cmd) =>
        act(cmd, async (ctx) => {
          await update(ctx, { key: key(user, type, conversationId), ...(verb === "add" ? { addLabels: labels } : { removeLabels: labels }) });
        }),
      );
  }

  program
    .command("custom-mark")
    .description("set the custom mark string (--clear or an empty value clears it)")
    .argument("<user>", "owner user ID")
    .argument("<type>", "direct or group", parseType)
    .argument("<conversation>", "conversation ID")
    .argument("[value]", "the custom mark, at most 256 UTF-8 bytes")
    .option("--clear", "clear the custom mark")
    .action((user, type, conversationId, value, o, cmd) =>
      act(cmd, async (ctx) => {
        if (value === undefined && !o.clear) throw new UsageError("custom-mark needs a value, or --clear");
        if (value !== undefined && o.clear) throw new UsageError("give a value or --clear, not both");
        await update(ctx, { key: key(user, type, conversationId), customMark: o.clear ? "" : value! });
      }),
    );

  program
    .command("pin")
    .description("pin a conversation (--off unpins it)")
    .argument("<user>", "owner user ID")
    .argument("<type>", "direct or group", parseType)
    .argument("<conversation>", "conversation ID")
    .option("--off", "unpin")
    .action((user, type, conversationId, o, cmd) =>
      act(cmd, async (ctx) => {
        await update(ctx, { key: key(user, type, conversationId), settings: { $typeName: "convmark.v1.ConversationSettings", pinned: !o.off } });
      }),
    );

  program
    .command("delete")
    .description("delete conversations (their marks, labels and settings)")
    .argument("<user>", "owner user ID")
    .argument("<type>", "direct or group", parseType)
    .argument("<conversations...>", "conversation IDs")
    .action((user, type, ids, _o, cmd) =>
      act(cmd, async (ctx) => {
        const res = await ctx.clients.marks.deleteConversations({ keys: ids.map((id) => key(user, type, id)) });
        if (ctx.json) printLine(L.toJsonString(L.DeleteConversationsResponseSchema, res, jsonOpts()));
        else
          printLine(
            L.table(
              ["CONVERSATION", "RESULT"],
              res.results.map((r, i) => [ids[i]!, (r.status?.code ?? 0) !== 0 ? L.statusText(r.status) : r.deleted ? "deleted" : "nothing to delete"]),
            ),
          );
        if (res.results.some((r) => (r.status?.code ?? 0) !== 0)) throw new PartialFailure("some deletes failed");
      }),
    );

  program
    .command("watch")
    .description("print changes as they happen (Ctrl-C stops); each line carries the cursor to resume from")
    .option("--user <user>", "one owner's changes (default: every owner)")
    .option("--cursor <cursor>", "resume after this cursor (from watch or sync) instead of starting now")
    .action((o, cmd) =>
      act(cmd, async (ctx) => {
        const abort = new AbortController();
        const stop = () => abort.abort();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        try {
          for await (const msg of ctx.clients.marks.watchConversations({ ownerUserId: o.user ?? "", cursor: o.cursor ?? "" }, { signal: abort.signal })) {
            if (ctx.json) {
              if (msg.changes.length) printLine(L.toJsonString(L.WatchConversationsResponseSchema, msg, jsonOpts()));
              continue;
            }
            for (const ch of msg.changes) printLine(changeLine(ch, msg.cursor));
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          throw e;
        } finally {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
        }
        if (!abort.signal.aborted) throw new L.ConnectError("the server ended the watch", L.Code.Unavailable);
      }),
    );

  program
    .command("sync")
    .description("print the changes after a cursor (from the beginning without one), then the next cursor")
    .option("--user <user>", "one owner's changes (default: every owner)")
    .option("--cursor <cursor>", "continue after this cursor")
    .option("--page-size <n>", "changes per page, 1..1000", parsePositiveInt(1000))
    .option("--all", "follow pages until no more changes are waiting")
    .action((o, cmd) =>
      act(cmd, async (ctx) => {
        let cursor = o.cursor ?? "";
        for (;;) {
          const page = await ctx.clients.marks.syncConversations({ ownerUserId: o.user ?? "", cursor, pageSize: o.pageSize ?? 0 });
          if (ctx.json) printLine(L.toJsonString(L.SyncConversationsResponseSchema, page, jsonOpts()));
          else {
            if (page.reset) printLine("reset: the cursor is older than the kept tombstones; re-list everything, then sync from the cursor below");
            for (const ch of page.changes) printLine(changeLine(ch, page.nextCursor));
          }
          cursor = page.nextCursor;
          if (!o.all || !page.hasMore || page.reset) {
            if (!ctx.json) process.stderr.write(`next cursor: ${page.nextCursor}${page.hasMore ? " (more waiting)" : ""}\n`);
            return;
          }
        }
      }),
    );

  const users = program.command("users").description("the directory's users (strict mode)");
  users
    .command("show")
    .description("show whether users are registered")
    .argument("<users...>", "user IDs")
    .action((ids, _o, cmd) =>
      act(cmd, async (ctx) => {
        const res = await ctx.clients.directory.getUsers({ userIds: ids });
        if (ctx.json) printLine(L.toJsonString(L.GetUsersResponseSchema, res, jsonOpts()));
        else
          printLine(
            L.table(
              ["USER", "REGISTERED", "SINCE"],
              res.users.map((u) => [u.userId, u.registered ? "yes" : "no", u.registerTime ? L.timestampDate(u.registerTime).toISOString() : "-"]),
            ),
          );
      }),
    );
  users
    .command("register")
    .description("register users")
    .argument("<users...>", "user IDs")
    .action((ids, _o, cmd) => act(cmd, async (ctx) => idResultsOut(ctx, (await ctx.clients.directory.registerUsers({ userIds: ids })).results)));
  users
    .command("unregister")
    .description("unregister users")
    .argument("<users...>", "user IDs")
    .action((ids, _o, cmd) => act(cmd, async (ctx) => idResultsOut(ctx, (await ctx.clients.directory.unregisterUsers({ userIds: ids })).results)));

  const groups = program.command("groups").description("the directory's groups and their members (strict mode)");
  groups
    .command("show")
    .description("show a group and its members")
    .argument("<group>", "group ID")
    .action((groupId, _o, cmd) => act(cmd, async (ctx) => groupOut(ctx, (await ctx.clients.directory.getGroup({ groupId })).group)));
  groups
    .command("create")
    .description("create (or re-create a dismissed) group")
    .argument("<group>", "group ID")
    .argument("[members...]", "member user IDs")
    .action((groupId, members, _o, cmd) =>
      act(cmd, async (ctx) => groupOut(ctx, (await ctx.clients.directory.createGroup({ groupId, memberUserIds: members })).group)),
    );
  groups
    .command("add-members")
    .description("add members to a group")
    .argument("<group>", "group ID")
    .argument("<users...>", "user IDs")
    .action((groupId, ids, _o, cmd) => act(cmd, async (ctx) => idResultsOut(ctx, (await ctx.clients.directory.addGroupMembers({ groupId, userIds: ids })).results)));
  groups
    .command("remove-members")
    .description("remove members from a group")
    .argument("<group>", "group ID")
    .argument("<users...>", "user IDs")
    .action((groupId, ids, _o, cmd) =>
      act(cmd, async (ctx) => idResultsOut(ctx, (await ctx.clients.directory.removeGroupMembers({ groupId, userIds: ids })).results)),
    );
  groups
    .command("dismiss")
    .description("dismiss a group")
    .argument("<group>", "group ID")
    .action((groupId, _o, cmd) => act(cmd, async (ctx) => groupOut(ctx, (await ctx.clients.directory.dismissGroup({ groupId })).group)));

  program
    .command("health")
    .description("ask the server's grpc.health.v1 service; exit 1 unless SERVING")
    .argument("[service]", "a service name (default: the whole server)", "")
    .action((service, _o, cmd) =>
      act(cmd, async (ctx) => {
        const res = await ctx.clients.health.check({ service });
        if (ctx.json) printLine(L.toJsonString(L.HealthCheckResponseSchema, res, jsonOpts()));
        else printLine(L.HealthCheckResponse_ServingStatus[res.status] ?? String(res.status));
        if (res.status !== L.HealthCheckResponse_ServingStatus.SERVING) throw new PartialFailure("not serving");
      }),
    );

  program
    .command("export")
    .description("write conversations as NDJSON to stdout (one Conversation in proto JSON per line): every owner's, or --user's")
    .option("--user <user>", "only this owner's conversations")
    .action((o, cmd) =>
      act(cmd, async (ctx) => {
        const n = await L.exportConversations(ctx.clients, process.stdout, o.user);
        process.stderr.write(`exported ${n} conversation${n === 1 ? "" : "s"}\n`);
      }),
    );

  program
    .command("import")
    .description(
      "read NDJSON conversations from stdin (as export writes them) and restore them in batches (RestoreConversations, a service token): " +
        "version and update time are kept; a conversation the target already has at that version or newer is skipped, so a rerun after an interruption resumes",
    )
    .addOption(new Option("--batch-size <n>", `conversations per RestoreConversations call, 1..${MAX_IMPORT_BATCH}`).argParser(parsePositiveInt(MAX_IMPORT_BATCH)).default(MAX_IMPORT_BATCH))
    .option("--resume", "rerun after an interruption (what is already in is skipped; every import does this, the flag is kept for scripts)")
    .option("--no-progress", "no progress bar (it is shown only when stderr is a terminal)")
    .action((o, cmd) =>
      act(cmd, async (ctx) => {
        if (process.stdin.isTTY) throw new UsageError("import reads NDJSON from stdin: convmark import < backup.ndjson");
        const s = await L.importConversations(ctx.clients, process.stdin, { batchSize: o.batchSize, progress: o.progress });
        if (ctx.json) printLine(JSON.stringify(s));
        else {
          process.stderr.write(`read ${s.read}, written ${s.written}, skipped (already in) ${s.skipped}, failed ${s.failed}\n`);
          if (s.failed) {
            const byCode = new Map<string, number>();
            for (const f of s.failures) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
            process.stderr.write(`failures by reason: ${[...byCode].map(([c, n]) => `${c} ${n}`).join(", ")}\n`);
            for (const f of s.failures.slice(0, 20)) process.stderr.write(`  line ${f.line}${f.key ? ` ${f.key}` : ""}: ${f.code}: ${f.message}\n`);
            if (s.failures.length > 20) process.stderr.write(`  … and ${s.failures.length - 20} more (--json lists them all)\n`);
          }
        }
        if (s.failed) throw new PartialFailure("some lines failed");
      }),
    );

  return program as unknown as Command;
}

/** Parses argv and runs; usage errors exit 2, --help and --version 0. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.code === "commander.helpDisplayed" || e.code === "commander.help" || e.code === "commander.version" ? 0 : EXIT_USAGE;
      return;
    }
    if (e instanceof InvalidArgumentError) {
      printError(e.message);
      process.exitCode = EXIT_USAGE;
      return;
    }
    throw e;
  }
}

await main(process.argv);
