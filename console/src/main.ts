/**
 * The convmark console: sign in, pick a user, see and edit their conversations, watch them change
 * live, and look up the directory. Plain DOM; every control is a native element (keyboard usable).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { anyUnpack, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ConversationType,
  ReceiveOption,
  type Conversation,
  type ConversationFilterSchema,
  type ConversationKey,
} from "../../gen/convmark/v1/mark_service_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { MARK_NAMES, markName, parseMarkName } from "../../src/domain/mark-names.js";
import { directory, marks, token } from "./api.js";
import "./style.css";

const PAGE_SIZES = [25, 50, 100, 200];

// ---- small DOM helpers ----

type Attrs = Record<string, string | boolean | number | undefined | ((ev: Event) => void)>;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

const $ = <T extends HTMLElement>(sel: string, root: ParentNode = document): T => {
  const el = root.querySelector<T>(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el;
};

// ---- errors in words ----

function reasonOf(status: Status | undefined): string | undefined {
  for (const d of status?.details ?? []) {
    const info = anyUnpack(d, ErrorInfoSchema);
    if (info) return info.reason;
  }
  return undefined;
}

function errorText(e: unknown): string {
  const err = ConnectError.from(e);
  const hint =
    err.code === Code.Unauthenticated
      ? " Sign in with a token."
      : err.code === Code.PermissionDenied
        ? " This token may not do that."
        : err.code === Code.Unavailable || err.code === Code.Unknown
          ? " Is convmark running?"
          : "";
  return `${Code[err.code] ?? err.code}: ${err.rawMessage}${hint}`;
}

function statusText(s: Status | undefined): string {
  const reason = reasonOf(s);
  return `${Code[s?.code ?? 0] ?? s?.code}: ${s?.message ?? ""}${reason ? ` (${reason})` : ""}`;
}

function showError(message: string): void {
  const box = $("#error");
  box.textContent = message;
  box.hidden = false;
}

function clearError(): void {
  const box = $("#error");
  box.textContent = "";
  box.hidden = true;
}

function note(message: string): void {
  $("#note").textContent = message;
}

window.addEventListener("unhandledrejection", (ev) => showError(errorText(ev.reason)));
window.addEventListener("error", (ev) => showError(`Error: ${ev.message}`));

// ---- state ----

interface State {
  user: string;
  filter: { marksAll: number[]; marksAny: number[]; marksNone: number[]; type: ConversationType; labels: string[]; pinned: "" | "yes" | "no" };
  pageSize: number;
  /** Tokens of the pages before the current one (for "previous"), and the current one. */
  pageTokens: string[];
  nextPageToken: string;
  rows: Map<string, Conversation>;
  order: string[];
  watch?: AbortController;
  cursor: string;
  /** Feed changes that arrived while a list was in flight: applied on top of its result. */
  pending?: { conversation: Conversation; deleted: boolean }[];
  /** Counts list calls, so only the latest one installs its rows. */
  loads: number;
}

const state: State = {
  user: "",
  filter: { marksAll: [], marksAny: [], marksNone: [], type: ConversationType.UNSPECIFIED, labels: [], pinned: "" },
  pageSize: 50,
  pageTokens: [""],
  nextPageToken: "",
  rows: new Map(),
  order: [],
  cursor: "",
  loads: 0,
};

const keyId = (k: ConversationKey | undefined) => `${k?.type ?? 0}/${k?.conversationId ?? ""}`;
const typeLabel = (t: ConversationType | undefined) => (t === ConversationType.DIRECT ? "direct" : t === ConversationType.GROUP ? "group" : "?");

const RECEIVE_LABELS: Record<number, string> = {
  [ReceiveOption.UNSPECIFIED]: "—",
  [ReceiveOption.RECEIVE]: "receive",
  [ReceiveOption.DO_NOT_RECEIVE]: "do not receive",
  [ReceiveOption.RECEIVE_SILENTLY]: "silently",
};

function parseMarkList(text: string, field: string): number[] {
  const out: number[] = [];
  for (const part of text.split(/[\s,]+/)) {
    if (part === "") continue;
    const m = parseMarkName(part);
    if (m === undefined || m < 1 || m > 64) throw new Error(`${field}: "${part}" is not a mark (star, unread, fold, hide or 1..64)`);
    out.push(m);
  }
  return out;
}

const splitLabels = (text: string) => [...new Set(text.split(",").map((s) => s.trim()).filter((s) => s !== ""))];

/** The current filter as the server's message (the client-side check of live changes uses the same). */
function filterMessage(): MessageInitShape<typeof ConversationFilterSchema> {
  const f = state.filter;
  return {
    marksAll: f.marksAll,
    marksAny: f.marksAny,
    marksNone: f.marksNone,
    type: f.type,
    labelsAny: f.labels,
    ...(f.pinned === "" ? {} : { pinned: f.pinned === "yes" }),
  };
}

function matchesFilter(c: Conversation): boolean {
  const f = state.filter;
  const has = new Set(c.marks);
  if (f.marksAll.some((m) => !has.has(m))) return false;
  if (f.marksAny.length && !f.marksAny.some((m) => has.has(m))) return false;
  if (f.marksNone.some((m) => has.has(m))) return false;
  if (f.type !== ConversationType.UNSPECIFIED && c.key?.type !== f.type) return false;
  if (f.labels.length && !f.labels.some((l) => c.labels.includes(l))) return false;
  if (f.pinned !== "" && (c.settings?.pinned ?? false) !== (f.pinned === "yes")) return false;
  return true;
}

// ---- layout ----

function layout(): void {
  const app = $("#app");
  app.replaceChildren(
    h(
      "header",
      { class: "top" },
      h("h1", {}, "convmark console"),
      h(
        "nav",
        { "aria-label": "Views" },
        h("button", { type: "button", id: "nav-conversations", "aria-pressed": "true", onclick: () => showView("conversations") }, "Conversations"),
        h("button", { type: "button", id: "nav-directory", "aria-pressed": "false", onclick: () => showView("directory") }, "Directory"),
      ),
      h(
        "form",
        { id: "signin", class: "signin", onsubmit: onSignIn },
        h("label", { for: "token" }, "Token"),
        h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "bearer token (none on protected loopback)", size: 28 }),
        h("button", { type: "submit" }, "Sign in"),
        h("button", { type: "button", id: "signout", onclick: onSignOut }, "Sign out"),
        h("span", { id: "auth-state", role: "status" }),
      ),
    ),
    h("div", { id: "error", class: "error", role: "alert", hidden: true }),
    h("p", { id: "note", class: "note", role: "status", "aria-live": "polite" }),
    h(
      "main",
      {},
      h(
        "section",
        { id: "view-conversations", "aria-label": "Conversations" },
        h(
          "form",
          { id: "user-form", class: "bar", onsubmit: onOpenUser },
          h("label", { for: "user" }, "User"),
          h("input", { id: "user", name: "user", required: true, placeholder: "owner user ID", autocomplete: "off" }),
          h("button", { type: "submit" }, "Open"),
          h("span", { id: "live", class: "live", role: "status" }),
        ),
        h(
          "form",
          { id: "filters", class: "bar filters", onsubmit: onApplyFilters },
          h("fieldset", {}, h("legend", {}, "Filter"),
            labeled("f-marks-all", "All of marks", h("input", { id: "f-marks-all", placeholder: "star, 33", size: 10 })),
            labeled("f-marks-any", "Any of marks", h("input", { id: "f-marks-any", placeholder: "unread", size: 10 })),
            labeled("f-marks-none", "None of marks", h("input", { id: "f-marks-none", placeholder: "hide", size: 10 })),
            labeled("f-labels", "Labels (any)", h("input", { id: "f-labels", placeholder: "work, vip", size: 12 })),
            labeled(
              "f-type",
              "Type",
              h("select", { id: "f-type" }, h("option", { value: "0" }, "any"), h("option", { value: "1" }, "direct"), h("option", { value: "2" }, "group")),
            ),
            labeled(
              "f-pinned",
              "Pinned",
              h("select", { id: "f-pinned" }, h("option", { value: "" }, "any"), h("option", { value: "yes" }, "pinned"), h("option", { value: "no" }, "not pinned")),
            ),
            labeled("f-page-size", "Page size", h("select", { id: "f-page-size" }, ...PAGE_SIZES.map((n) => h("option", { value: String(n), selected: n === state.pageSize }, String(n))))),
            h("button", { type: "submit" }, "Apply"),
            h("button", { type: "button", onclick: onResetFilters }, "Reset"),
          ),
        ),
        h(
          "form",
          { id: "open-form", class: "bar", onsubmit: onOpenConversation },
          h("label", { for: "open-type" }, "Conversation"),
          h("select", { id: "open-type", "aria-label": "Conversation type" }, h("option", { value: "1" }, "direct"), h("option", { value: "2" }, "group")),
          h("input", { id: "open-id", required: true, placeholder: "peer user ID or group ID", "aria-label": "Conversation ID", autocomplete: "off" }),
          h("button", { type: "submit" }, "Edit"),
        ),
        h(
          "table",
          { id: "conversations", class: "grid" },
          h("caption", { id: "caption" }, "Open a user to see their conversations."),
          h(
            "thead",
            {},
            h("tr", {}, ...["Type", "Conversation", "Marks", "Custom mark", "Labels", "Pinned", "Receive", "Version", "Updated", "Actions"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h("tbody", { id: "rows" }),
        ),
        h(
          "div",
          { class: "bar pager" },
          h("button", { type: "button", id: "first-page", onclick: () => void goPage("first"), disabled: true }, "First page"),
          h("button", { type: "button", id: "prev-page", onclick: () => void goPage("prev"), disabled: true }, "Previous page"),
          h("button", { type: "button", id: "next-page", onclick: () => void goPage("next"), disabled: true }, "Next page"),
          h("span", { id: "page-info" }),
        ),
      ),
      h(
        "section",
        { id: "view-directory", "aria-label": "Directory", hidden: true },
        h("p", {}, "The directory holds the users and groups that strict mode (CONVMARK_STRICT_DIRECTORY=1) checks writes against."),
        h(
          "form",
          { id: "users-form", class: "bar", onsubmit: onLookUpUsers },
          h("label", { for: "d-users" }, "Users"),
          h("input", { id: "d-users", required: true, placeholder: "alice, bob", autocomplete: "off" }),
          h("button", { type: "submit" }, "Look up"),
        ),
        h("table", { id: "d-users-table", class: "grid", hidden: true }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "User"), h("th", { scope: "col" }, "Registered"), h("th", { scope: "col" }, "Since"))), h("tbody", {})),
        h(
          "form",
          { id: "group-form", class: "bar", onsubmit: onLookUpGroup },
          h("label", { for: "d-group" }, "Group"),
          h("input", { id: "d-group", required: true, placeholder: "group ID", autocomplete: "off" }),
          h("button", { type: "submit" }, "Look up"),
        ),
        h("div", { id: "d-group-result" }),
      ),
    ),
    editorDialog(),
  );
}

function labeled(id: string, text: string, control: HTMLElement): HTMLElement {
  return h("span", { class: "field" }, h("label", { for: id }, text), control);
}

function showView(view: "conversations" | "directory"): void {
  $("#view-conversations").hidden = view !== "conversations";
  $("#view-directory").hidden = view !== "directory";
  $("#nav-conversations").setAttribute("aria-pressed", String(view === "conversations"));
  $("#nav-directory").setAttribute("aria-pressed", String(view === "directory"));
  const url = new URL(location.href);
  if (view === "directory") url.searchParams.set("view", "directory");
  else url.searchParams.delete("view");
  history.replaceState(null, "", url);
}

// ---- sign in ----

function renderAuth(): void {
  $("#auth-state").textContent = token.get() ? "signed in with a token" : "no token (enough on protected loopback)";
  $<HTMLButtonElement>("#signout").disabled = !token.get();
}

function onSignIn(ev: Event): void {
  ev.preventDefault();
  const input = $<HTMLInputElement>("#token");
  token.set(input.value.trim());
  input.value = "";
  renderAuth();
  clearError();
  if (state.user) void openUser(state.user);
}

function onSignOut(): void {
  token.set("");
  renderAuth();
  if (state.user) void openUser(state.user);
}

// ---- conversations ----

function onOpenUser(ev: Event): void {
  ev.preventDefault();
  const user = $<HTMLInputElement>("#user").value.trim();
  if (user) void openUser(user);
}

function readFilters(): State["filter"] {
  return {
    marksAll: parseMarkList($<HTMLInputElement>("#f-marks-all").value, "All of marks"),
    marksAny: parseMarkList($<HTMLInputElement>("#f-marks-any").value, "Any of marks"),
    marksNone: parseMarkList($<HTMLInputElement>("#f-marks-none").value, "None of marks"),
    type: Number($<HTMLSelectElement>("#f-type").value) as ConversationType,
    labels: splitLabels($<HTMLInputElement>("#f-labels").value),
    pinned: $<HTMLSelectElement>("#f-pinned").value as "" | "yes" | "no",
  };
}

function onApplyFilters(ev: Event): void {
  ev.preventDefault();
  try {
    state.filter = readFilters();
    state.pageSize = Number($<HTMLSelectElement>("#f-page-size").value);
  } catch (e) {
    showError((e as Error).message);
    return;
  }
  state.pageTokens = [""];
  if (state.user) void loadPage();
}

function onResetFilters(): void {
  for (const id of ["#f-marks-all", "#f-marks-any", "#f-marks-none", "#f-labels"]) $<HTMLInputElement>(id).value = "";
  $<HTMLSelectElement>("#f-type").value = "0";
  $<HTMLSelectElement>("#f-pinned").value = "";
  state.filter = readFilters();
  state.pageTokens = [""];
  if (state.user) void loadPage();
}

async function openUser(user: string): Promise<void> {
  state.user = user;
  state.pageTokens = [""];
  $<HTMLInputElement>("#user").value = user;
  const url = new URL(location.href);
  url.searchParams.set("user", user);
  url.searchParams.delete("token");
  history.replaceState(null, "", url);
  document.title = `${user} · convmark console`;
  // The feed's position first, then the list: a write committing after that position reaches us
  // through the Watch (also while the list is in flight), one committing before it is in the list.
  await startWatch();
  await loadPage();
}

async function loadPage(): Promise<void> {
  clearError();
  const pageToken = state.pageTokens[state.pageTokens.length - 1] ?? "";
  $("#caption").textContent = `Loading ${state.user}'s conversations…`;
  const load = ++state.loads;
  state.pending ??= [];
  try {
    const res = await marks.listConversations({ ownerUserId: state.user, filter: filterMessage(), pageSize: state.pageSize, pageToken });
    if (load !== state.loads) return; // a newer list (another page or filter) is on its way
    state.rows = new Map(res.conversations.map((c) => [keyId(c.key), c]));
    state.order = res.conversations.map((c) => keyId(c.key));
    state.nextPageToken = res.nextPageToken;
    renderRows();
    // Changes the feed delivered while the list was read may be newer than what it returned.
    const pending = state.pending ?? [];
    state.pending = undefined;
    for (const p of pending) applyConversation(p.conversation, p.deleted, true);
  } catch (e) {
    if (load !== state.loads) return;
    state.pending = undefined;
    state.rows = new Map();
    state.order = [];
    state.nextPageToken = "";
    renderRows();
    $("#caption").textContent = `Could not load ${state.user}'s conversations.`;
    showError(errorText(e));
  }
}

async function goPage(where: "first" | "prev" | "next"): Promise<void> {
  if (where === "first") state.pageTokens = [""];
  else if (where === "prev" && state.pageTokens.length > 1) state.pageTokens.pop();
  else if (where === "next" && state.nextPageToken) state.pageTokens.push(state.nextPageToken);
  await loadPage();
  $<HTMLButtonElement>(where === "next" && !state.nextPageToken ? "#prev-page" : `#${where}-page`).focus();
}

function chips(c: Conversation): HTMLElement {
  const list = h("ul", { class: "chips", "aria-label": "marks" });
  // Named marks first (star, unread, fold, hide), then the numbers, as the marks are sorted.
  for (const m of [...c.marks].sort((a, b) => a - b)) {
    list.append(h("li", { class: `chip ${MARK_NAMES[m] ? `chip-${MARK_NAMES[m]}` : "chip-number"}`, "data-mark": String(m) }, markName(m)));
  }
  if (c.marks.length === 0) list.append(h("li", { class: "none" }, "—"));
  return list;
}

function row(c: Conversation): HTMLTableRowElement {
  const id = keyId(c.key);
  const when = c.updateTime ? timestampDate(c.updateTime) : undefined;
  const convCell =
    c.key?.type === ConversationType.GROUP
      ? h("a", { href: `?view=directory&group=${encodeURIComponent(c.key.conversationId)}`, onclick: (ev: Event) => { ev.preventDefault(); void lookUpGroup(c.key!.conversationId); } }, c.key.conversationId)
      : c.key?.conversationId ?? "";
  return h(
    "tr",
    { "data-key": id, "data-version": String(c.version) },
    h("td", {}, typeLabel(c.key?.type)),
    h("th", { scope: "row" }, convCell),
    h("td", {}, chips(c)),
    h("td", { class: "custom" }, c.customMark || "—"),
    h("td", { class: "labels" }, c.labels.length ? h("ul", { class: "chips" }, ...c.labels.map((l) => h("li", { class: "chip chip-label" }, l))) : "—"),
    h("td", {}, c.settings?.pinned ? "pinned" : "—"),
    h("td", {}, RECEIVE_LABELS[c.settings?.receiveOption ?? 0] ?? "—"),
    h("td", { class: "version" }, String(c.version)),
    h("td", {}, when ? h("time", { datetime: when.toISOString(), title: when.toISOString() }, when.toLocaleString()) : "—"),
    h(
      "td",
      { class: "actions" },
      h("button", { type: "button", class: "edit", "aria-label": `Edit ${typeLabel(c.key?.type)} ${c.key?.conversationId}`, onclick: () => openEditor(c.key!, c) }, "Edit"),
      h("button", { type: "button", class: "pin", "aria-label": `${c.settings?.pinned ? "Unpin" : "Pin"} ${c.key?.conversationId}`, onclick: () => void quickPin(c) }, c.settings?.pinned ? "Unpin" : "Pin"),
    ),
  );
}

function renderRows(): void {
  const body = $("#rows");
  body.replaceChildren(...state.order.map((id) => row(state.rows.get(id)!)));
  const page = state.pageTokens.length;
  $("#caption").textContent = state.order.length
    ? `${state.user}: ${state.order.length} conversation${state.order.length === 1 ? "" : "s"} on page ${page}${state.nextPageToken ? ", more on the next page" : ""}`
    : `${state.user} has no conversations matching this filter${page > 1 ? " on this page" : ""}.`;
  $<HTMLButtonElement>("#first-page").disabled = page <= 1;
  $<HTMLButtonElement>("#prev-page").disabled = page <= 1;
  $<HTMLButtonElement>("#next-page").disabled = !state.nextPageToken;
  $("#page-info").textContent = `page ${page}`;
}

/** A conversation's new state, from our own write or from the feed: update, insert or drop its row. */
function applyConversation(c: Conversation, deleted: boolean, live: boolean): void {
  if (c.key?.ownerUserId !== state.user) return;
  const id = keyId(c.key);
  const known = state.rows.get(id);
  if (known && known.version > c.version) return; // an older state than the one shown
  if (deleted || !matchesFilter(c)) {
    if (!known) return;
    state.rows.delete(id);
    state.order = state.order.filter((k) => k !== id);
  } else if (known) {
    state.rows.set(id, c);
  } else {
    // New in this view: on the first page it goes on top (newest change first), elsewhere it waits.
    if (state.pageTokens.length > 1) return;
    state.rows.set(id, c);
    state.order.unshift(id);
  }
  renderRows();
  if (live) {
    const tr = document.querySelector(`tr[data-key="${CSS.escape(id)}"]`);
    tr?.classList.add("flash");
    note(`${deleted ? "Deleted" : "Changed"}: ${typeLabel(c.key?.type)} ${c.key?.conversationId} (version ${c.version})`);
  }
}

/** How long a list waits for the feed to answer before it goes ahead without live updates. */
const WATCH_READY_MS = 5_000;

/**
 * Opens the live feed of the current user. Resolves once the feed has told us where it stands (its
 * first message: the cursor it is live from), or it failed, or WATCH_READY_MS passed; a list read
 * after that misses nothing. The feed then runs until another user is opened, reconnecting from
 * its last cursor; a cursor the server no longer knows makes it start afresh and re-list.
 */
function startWatch(): Promise<void> {
  state.watch?.abort();
  const abort = new AbortController();
  state.watch = abort;
  state.cursor = "";
  // Until the list that follows is in, changes wait for it (see loadPage).
  state.pending = [];
  const user = state.user;
  const live = $("#live");
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const timer = setTimeout(ready, WATCH_READY_MS);
  let relist = false;
  void (async () => {
    let delay = 500;
    while (!abort.signal.aborted) {
      try {
        live.textContent = "live: connecting…";
        for await (const msg of marks.watchConversations({ ownerUserId: user, cursor: state.cursor }, { signal: abort.signal })) {
          if (abort.signal.aborted) return;
          live.textContent = "live";
          live.className = "live on";
          delay = 500;
          state.cursor = msg.cursor;
          for (const ch of msg.changes) {
            if (!ch.conversation) continue;
            if (state.pending) state.pending.push({ conversation: ch.conversation, deleted: ch.deleted });
            else applyConversation(ch.conversation, ch.deleted, true);
          }
          clearTimeout(timer);
          ready();
          if (relist) {
            relist = false;
            void loadPage();
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        const err = ConnectError.from(e);
        live.className = "live off";
        live.textContent = `live updates stopped: ${errorText(err)}`;
        clearTimeout(timer);
        ready();
        // Errors that a retry cannot fix stop the watch; the rest reconnect from the last cursor.
        if ([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.Unimplemented].includes(err.code)) return;
        // The cursor is older than the server's tombstones: start from now and list again.
        if (err.code === Code.FailedPrecondition) {
          state.cursor = "";
          relist = true;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return isReady;
}

async function quickPin(c: Conversation): Promise<void> {
  await write({ key: c.key!, settings: { pinned: !(c.settings?.pinned ?? false) } }, `${c.settings?.pinned ? "Unpinned" : "Pinned"} ${c.key?.conversationId}`);
}

type UpdateInit = Parameters<typeof marks.updateConversations>[0] extends { updates?: (infer U)[] } ? U : never;

/** One update; its result (or its refusal, in words) is shown. Returns true when applied. */
async function write(update: UpdateInit, done: string): Promise<boolean> {
  clearError();
  try {
    const res = await marks.updateConversations({ updates: [update] });
    const r = res.results[0];
    if (!r || (r.status?.code ?? 0) !== 0) {
      showError(`Refused: ${statusText(r?.status)}`);
      return false;
    }
    if (r.conversation) applyConversation(r.conversation, false, false);
    note(r.changed ? done : `${done}: nothing changed`);
    return true;
  } catch (e) {
    showError(errorText(e));
    return false;
  }
}

// ---- the editor ----

function editorDialog(): HTMLDialogElement {
  const named = [1, 2, 3, 4].map((m) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", id: `e-mark-${m}`, "data-mark": String(m) }), ` ${markName(m)}`),
  );
  return h(
    "dialog",
    // Escape closes the dialog natively; forget what it was editing then too.
    { id: "editor", "aria-labelledby": "editor-title", onclose: () => (editing = undefined) },
    h(
      "form",
      { id: "editor-form", method: "dialog", onsubmit: onSave },
      h("h2", { id: "editor-title" }, "Edit conversation"),
      h("fieldset", {}, h("legend", {}, "Marks"), ...named, labeled("e-marks-other", "Other marks (5..64)", h("input", { id: "e-marks-other", placeholder: "5, 33", size: 12 }))),
      labeled("e-custom", "Custom mark", h("input", { id: "e-custom", maxlength: 256, size: 30 })),
      labeled("e-labels", "Labels (comma-separated)", h("input", { id: "e-labels", size: 30 })),
      h("label", { class: "check" }, h("input", { type: "checkbox", id: "e-pinned" }), " pinned"),
      labeled(
        "e-receive",
        "Receive option",
        h("select", { id: "e-receive" }, ...Object.entries(RECEIVE_LABELS).map(([v, t]) => h("option", { value: v }, v === "0" ? "(not set)" : t))),
      ),
      h("div", { id: "editor-error", class: "error", role: "alert", hidden: true }),
      h(
        "div",
        { class: "bar" },
        h("button", { type: "submit", id: "e-save" }, "Save"),
        h("button", { type: "button", id: "e-cancel", onclick: closeEditor }, "Cancel"),
        h("button", { type: "button", id: "e-delete", class: "danger", onclick: onDelete }, "Delete conversation"),
      ),
    ),
  );
}

let editing: { key: ConversationKey; before: Conversation | undefined } | undefined;

function openEditor(key: ConversationKey, c: Conversation | undefined): void {
  editing = { key, before: c };
  $("#editor-title").textContent = `${state.user}: ${typeLabel(key.type)} ${key.conversationId}`;
  const has = new Set(c?.marks ?? []);
  for (const m of [1, 2, 3, 4]) $<HTMLInputElement>(`#e-mark-${m}`).checked = has.has(m);
  $<HTMLInputElement>("#e-marks-other").value = (c?.marks ?? []).filter((m) => m > 4).join(", ");
  $<HTMLInputElement>("#e-custom").value = c?.customMark ?? "";
  $<HTMLInputElement>("#e-labels").value = (c?.labels ?? []).join(", ");
  $<HTMLInputElement>("#e-pinned").checked = c?.settings?.pinned ?? false;
  $<HTMLSelectElement>("#e-receive").value = String(c?.settings?.receiveOption ?? 0);
  const del = $<HTMLButtonElement>("#e-delete");
  del.textContent = "Delete conversation";
  del.dataset.armed = "";
  $("#editor-error").hidden = true;
  $<HTMLDialogElement>("#editor").showModal();
  $<HTMLInputElement>("#e-mark-1").focus();
}

function closeEditor(): void {
  $<HTMLDialogElement>("#editor").close();
  editing = undefined;
}

function editorError(text: string): void {
  const box = $("#editor-error");
  box.textContent = text;
  box.hidden = false;
}

async function onSave(ev: Event): Promise<void> {
  ev.preventDefault();
  if (!editing) return;
  const { key, before } = editing;
  let wanted: number[];
  try {
    wanted = [...[1, 2, 3, 4].filter((m) => $<HTMLInputElement>(`#e-mark-${m}`).checked), ...parseMarkList($<HTMLInputElement>("#e-marks-other").value, "Other marks")];
  } catch (e) {
    editorError((e as Error).message);
    return;
  }
  const had = new Set(before?.marks ?? []);
  const want = new Set(wanted);
  const labels = splitLabels($<HTMLInputElement>("#e-labels").value);
  const hadLabels = new Set(before?.labels ?? []);
  const custom = $<HTMLInputElement>("#e-custom").value;
  const pinned = $<HTMLInputElement>("#e-pinned").checked;
  const receive = Number($<HTMLSelectElement>("#e-receive").value) as ReceiveOption;
  const settings: { pinned?: boolean; receiveOption?: ReceiveOption } = {};
  if (pinned !== (before?.settings?.pinned ?? false)) settings.pinned = pinned;
  if (receive !== (before?.settings?.receiveOption ?? 0) && receive !== ReceiveOption.UNSPECIFIED) settings.receiveOption = receive;
  const update: UpdateInit = {
    key,
    setMarks: [...want].filter((m) => !had.has(m)),
    clearMarks: [...had].filter((m) => !want.has(m)),
    addLabels: labels.filter((l) => !hadLabels.has(l)),
    removeLabels: [...hadLabels].filter((l) => !labels.includes(l)),
    ...(custom !== (before?.customMark ?? "") ? { customMark: custom } : {}),
    ...(Object.keys(settings).length ? { settings } : {}),
  };
  clearError();
  try {
    const res = await marks.updateConversations({ updates: [update] });
    const r = res.results[0];
    if (!r || (r.status?.code ?? 0) !== 0) {
      editorError(`Refused: ${statusText(r?.status)}`);
      return;
    }
    if (r.conversation) applyConversation(r.conversation, false, false);
    note(r.changed ? `Saved ${typeLabel(key.type)} ${key.conversationId}` : "Nothing changed");
    closeEditor();
  } catch (e) {
    editorError(errorText(e));
  }
}

async function onDelete(): Promise<void> {
  if (!editing) return;
  const btn = $<HTMLButtonElement>("#e-delete");
  // Two steps instead of window.confirm (which some browsers suppress): first arm, then confirm.
  if (btn.dataset.armed !== "yes") {
    btn.dataset.armed = "yes";
    btn.textContent = "Press again to delete";
    return;
  }
  const { key } = editing;
  try {
    const res = await marks.deleteConversations({ keys: [key] });
    const r = res.results[0];
    if (!r || (r.status?.code ?? 0) !== 0) {
      editorError(`Refused: ${statusText(r?.status)}`);
      return;
    }
    const id = keyId(key);
    state.rows.delete(id);
    state.order = state.order.filter((k) => k !== id);
    renderRows();
    note(r.deleted ? `Deleted ${typeLabel(key.type)} ${key.conversationId}` : "There was nothing to delete");
    closeEditor();
  } catch (e) {
    editorError(errorText(e));
  }
}

function onOpenConversation(ev: Event): void {
  ev.preventDefault();
  if (!state.user) {
    showError("Open a user first.");
    return;
  }
  const type = Number($<HTMLSelectElement>("#open-type").value) as ConversationType;
  const conversationId = $<HTMLInputElement>("#open-id").value.trim();
  if (!conversationId) return;
  const key: ConversationKey = { $typeName: "convmark.v1.ConversationKey", ownerUserId: state.user, type, conversationId };
  void (async () => {
    try {
      const res = await marks.getConversation({ key });
      openEditor(key, res.conversation);
    } catch (e) {
      if (ConnectError.from(e).code === Code.NotFound) openEditor(key, undefined);
      else showError(errorText(e));
    }
  })();
}

// ---- directory ----

function onLookUpUsers(ev: Event): void {
  ev.preventDefault();
  const ids = splitLabels($<HTMLInputElement>("#d-users").value);
  void (async () => {
    clearError();
    try {
      const res = await directory.getUsers({ userIds: ids });
      const table = $<HTMLTableElement>("#d-users-table");
      table.hidden = false;
      $("tbody", table).replaceChildren(
        ...res.users.map((u) =>
          h(
            "tr",
            {},
            h("th", { scope: "row" }, h("a", { href: `?user=${encodeURIComponent(u.userId)}`, onclick: (e: Event) => { e.preventDefault(); showView("conversations"); void openUser(u.userId); } }, u.userId)),
            h("td", {}, u.registered ? "registered" : "not registered"),
            h("td", {}, u.registerTime ? timestampDate(u.registerTime).toLocaleString() : "—"),
          ),
        ),
      );
    } catch (e) {
      showError(errorText(e));
    }
  })();
}

function onLookUpGroup(ev: Event): void {
  ev.preventDefault();
  void lookUpGroup($<HTMLInputElement>("#d-group").value.trim());
}

async function lookUpGroup(groupId: string): Promise<void> {
  showView("directory");
  $<HTMLInputElement>("#d-group").value = groupId;
  const out = $("#d-group-result");
  clearError();
  try {
    const { group } = await directory.getGroup({ groupId });
    if (!group) throw new ConnectError("no such group", Code.NotFound);
    out.replaceChildren(
      h("h3", {}, `Group ${group.groupId}`),
      h(
        "p",
        {},
        group.dismissed ? "dismissed" : "active",
        ` · ${group.memberCount} member${group.memberCount === 1 ? "" : "s"}`,
        group.createTime ? ` · created ${timestampDate(group.createTime).toLocaleString()}` : "",
      ),
      h("ul", { class: "members" }, ...group.memberUserIds.map((m) => h("li", {}, h("a", { href: `?user=${encodeURIComponent(m)}`, onclick: (e: Event) => { e.preventDefault(); showView("conversations"); void openUser(m); } }, m)))),
    );
  } catch (e) {
    out.replaceChildren();
    showError(errorText(e));
  }
}

// ---- start ----

layout();
const params = new URL(location.href).searchParams;
// A token in the URL is taken once into this tab's session storage and removed from the address bar.
if (params.get("token")) {
  token.set(params.get("token")!);
  const url = new URL(location.href);
  url.searchParams.delete("token");
  history.replaceState(null, "", url);
}
renderAuth();
if (params.get("view") === "directory") {
  showView("directory");
  const g = params.get("group");
  if (g) void lookUpGroup(g);
}
const initialUser = params.get("user");
if (initialUser) void openUser(initialUser);
else $<HTMLInputElement>("#user").focus();
