/**
 * A small model of the MongoDB behaviour the adapter relies on, for tests that cannot reach a server:
 * the update operators it emits ($bit, $addToSet, $pull, $set, $setOnInsert, $inc; path conflicts),
 * the query operators it uses, and an in-memory fake of the driver surface openMongoStore touches,
 * with snapshot transactions that abort on write conflicts (first committer wins) and are retried by
 * withTransaction like the real driver does for TransientTransactionError.
 *
 * It is a model written from the MongoDB documentation and server source, not MongoDB: it checks the
 * adapter's wiring and its documents' semantics, not the server.
 */
import { Long, MongoServerError, type AnyBulkWriteOperation, type Document, type MongoClient } from "mongodb";
import { toBigInt } from "../../src/store/mongo-updates.js";

export type Doc = Record<string, unknown>;

/** Copy keeping Long and Date instances (structuredClone would turn a Long into a plain object). */
export function cloneDoc(d: Doc): Doc {
  const out: Doc = {};
  for (const [k, v] of Object.entries(d)) {
    out[k] = Array.isArray(v)
      ? [...v]
      : v instanceof Long || v instanceof Date || v === null || typeof v !== "object"
        ? v
        : cloneDoc(v as Doc);
  }
  return out;
}

function updatedPaths(update: Document): string[] {
  return Object.values(update).flatMap((fields) => Object.keys(fields as object));
}

/** MongoDB refuses an update document touching one path twice, or a path and its prefix. */
export function assertNoConflicts(update: Document): void {
  const ps = updatedPaths(update);
  for (const a of ps) {
    for (const b of ps) {
      if (a !== b && b.startsWith(`${a}.`)) throw new Error(`Updating the path '${b}' would create a conflict at '${a}'`);
    }
  }
  const dup = ps.find((p, i) => ps.indexOf(p) !== i);
  if (dup !== undefined) throw new Error(`Updating the path '${dup}' would create a conflict at '${dup}'`);
}

function getPath(doc: Doc, path: string): unknown {
  let o: unknown = doc;
  for (const p of path.split(".")) {
    if (o === null || typeof o !== "object") return undefined;
    o = (o as Doc)[p];
  }
  return o;
}

function setPath(doc: Doc, path: string, v: unknown): void {
  const parts = path.split(".");
  let o = doc;
  for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Doc;
  o[parts.at(-1)!] = v;
}

export function applyMongoUpdate(doc: Doc, update: Document, inserting: boolean): void {
  if (Array.isArray(update)) throw new Error("pipeline updates are not modelled");
  assertNoConflicts(update);
  for (const [op, fields] of Object.entries(update)) {
    for (const [path, arg] of Object.entries(fields as Document)) {
      switch (op) {
        case "$set":
          setPath(doc, path, arg);
          break;
        case "$setOnInsert":
          if (inserting) setPath(doc, path, arg);
          break;
        case "$inc": {
          if (!(arg instanceof Long) && typeof arg !== "number") throw new Error("$inc needs a number");
          const cur = getPath(doc, path);
          const sum = toBigInt(cur) + toBigInt(arg);
          // int32 + int32 stays int32 (number here); anything with a Long gives a Long.
          setPath(doc, path, arg instanceof Long || cur instanceof Long ? Long.fromBigInt(sum) : Number(sum));
          break;
        }
        case "$bit": {
          const cur = getPath(doc, path);
          if (cur !== undefined && !(cur instanceof Long) && typeof cur !== "number") throw new Error("$bit on a non-integer");
          let v = toBigInt(cur); // a missing field starts from 0
          const ops = Object.entries(arg as Document);
          if (ops.length === 0) throw new Error("$bit needs at least one operation");
          for (const [bop, operand] of ops) {
            if (!(operand instanceof Long)) throw new Error("$bit operands must be 64-bit here");
            const x = operand.toBigInt();
            if (bop === "and") v &= x;
            else if (bop === "or") v |= x;
            else if (bop === "xor") v ^= x;
            else throw new Error(`$bit: unknown operator ${bop}`);
          }
          setPath(doc, path, Long.fromBigInt(BigInt.asIntN(64, v)));
          break;
        }
        case "$addToSet": {
          const cur = getPath(doc, path);
          if (cur !== undefined && !Array.isArray(cur)) throw new Error("$addToSet on a non-array");
          const arr = [...((cur as unknown[] | undefined) ?? [])];
          for (const l of (arg as { $each: unknown[] }).$each) if (!arr.includes(l)) arr.push(l);
          setPath(doc, path, arr);
          break;
        }
        case "$pull": {
          const cur = getPath(doc, path);
          const out = (arg as { $in: unknown[] }).$in;
          if (Array.isArray(cur)) setPath(doc, path, cur.filter((l) => !out.includes(l)));
          break;
        }
        default:
          throw new Error(`unmodelled update operator ${op}`);
      }
    }
  }
}

const isNumeric = (v: unknown) => typeof v === "number" || typeof v === "bigint" || v instanceof Long;

function bits(v: unknown): bigint | undefined {
  if (!isNumeric(v)) return undefined; // $bits* never match missing or non-numeric fields
  return BigInt.asUintN(64, toBigInt(v));
}

function eq(a: unknown, b: unknown): boolean {
  if (isNumeric(a) && isNumeric(b)) return toBigInt(a) === toBigInt(b);
  if (Array.isArray(a)) return a.some((x) => eq(x, b));
  return a === b;
}

function matchesCondition(value: unknown, cond: unknown): boolean {
  const isOps = cond !== null && typeof cond === "object" && !(cond instanceof Long) && Object.keys(cond).every((k) => k.startsWith("$"));
  if (!isOps) return eq(value, cond);
  return Object.entries(cond as Document).every(([op, arg]) => {
    switch (op) {
      case "$in":
        return (arg as unknown[]).some((x) => eq(value, x));
      case "$ne":
        return !eq(value, arg);
      case "$lt":
        return isNumeric(value) && toBigInt(value) < toBigInt(arg);
      case "$bitsAllSet":
      case "$bitsAnySet":
      case "$bitsAllClear": {
        const v = bits(value);
        if (v === undefined) return false;
        const set = (arg as number[]).map((p) => ((v >> BigInt(p)) & 1n) === 1n);
        return op === "$bitsAllSet" ? set.every(Boolean) : op === "$bitsAnySet" ? set.some(Boolean) : !set.some(Boolean);
      }
      default:
        throw new Error(`unmodelled query operator ${op}`);
    }
  });
}

export function matches(doc: Doc, filter: Document): boolean {
  return Object.entries(filter).every(([k, cond]) => {
    if (k === "$or") return (cond as Document[]).some((f) => matches(doc, f));
    if (k.startsWith("$")) throw new Error(`unmodelled top-level operator ${k}`);
    return matchesCondition(getPath(doc, k), cond);
  });
}

/** Applies ordered updateOne operations to a keyed collection (the model of bulkWrite). */
export function applyWrites(coll: Map<string, Doc>, ops: AnyBulkWriteOperation<Document>[], idOf: (d: Doc) => string): string[] {
  const written: string[] = [];
  for (const op of ops) {
    if (!("updateOne" in op)) throw new Error("only updateOne is modelled");
    const { filter, update, upsert } = op.updateOne;
    let id = [...coll].find(([, d]) => matches(d, filter))?.[0];
    let doc: Doc;
    if (id === undefined) {
      if (!upsert) continue;
      doc = {};
      for (const [k, v] of Object.entries(filter)) if (!k.startsWith("$") && (v === null || typeof v !== "object")) doc[k] = v;
      applyMongoUpdate(doc, update as Document, true);
      id = idOf(doc);
      if (coll.has(id)) throw new MongoServerError({ message: "E11000 duplicate key error", code: 11000 });
    } else {
      doc = cloneDoc(coll.get(id)!);
      applyMongoUpdate(doc, update as Document, false);
    }
    coll.set(id, doc);
    written.push(id);
  }
  return written;
}

interface Versioned {
  doc: Doc;
  ver: number;
}

interface Txn {
  /** Snapshot of every collection at the start, then the transaction's own writes on top. */
  view: Map<string, Map<string, Doc>>;
  snapshotVer: Map<string, number | undefined>;
  written: Set<string>;
}

const ID_OF: Record<string, (d: Doc) => string> = {
  conversations: (d) => JSON.stringify([d.owner, d.type, d.cid]),
  owners: (d) => String(d._id),
};

/** An in-memory stand-in for the parts of MongoClient the store uses. */
export class FakeMongo {
  readonly committed = new Map<string, Map<string, Versioned>>();
  readonly indexes: { collection: string; spec: Document; options: Document }[] = [];
  readonly commands: Document[] = [];
  readonly created: string[] = [];
  commits = 0;
  conflicts = 0;
  closed = false;
  /** Hook to inject failures: called before each collection operation. */
  beforeOp: (collection: string, op: string, filter: Document) => void = () => {};
  private ver = 0;

  constructor(readonly hello: Document = { setName: "rs0", isWritablePrimary: true }) {}

  coll(name: string): Map<string, Versioned> {
    let c = this.committed.get(name);
    if (!c) this.committed.set(name, (c = new Map()));
    return c;
  }

  /** The current committed documents of a collection. */
  docs(name: string): Doc[] {
    return [...this.coll(name).values()].map((v) => cloneDoc(v.doc));
  }

  private view(name: string, txn: Txn | undefined): Map<string, Doc> {
    if (txn) {
      // startTxn copied every collection that existed; one that did not was empty in the snapshot.
      let v = txn.view.get(name);
      if (!v) txn.view.set(name, (v = new Map()));
      return v;
    }
    return new Map([...this.coll(name)].map(([id, x]) => [id, x.doc]));
  }

  private startTxn(): Txn {
    const view = new Map<string, Map<string, Doc>>();
    const snapshotVer = new Map<string, number | undefined>();
    for (const [name, c] of this.committed) {
      view.set(name, new Map([...c].map(([id, x]) => [id, cloneDoc(x.doc)])));
      for (const [id, x] of c) snapshotVer.set(`${name}/${id}`, x.ver);
    }
    return { view, snapshotVer, written: new Set() };
  }

  /** First committer wins: a write to a document committed by someone else since our snapshot conflicts. */
  private commit(txn: Txn): void {
    for (const w of txn.written) {
      const [name, ...rest] = w.split("/");
      const id = rest.join("/");
      const now = this.coll(name!).get(id)?.ver;
      if (now !== txn.snapshotVer.get(w)) {
        this.conflicts++;
        const e = new MongoServerError({ message: "WriteConflict during plan execution", code: 112 });
        e.addErrorLabel("TransientTransactionError");
        throw e;
      }
    }
    for (const w of txn.written) {
      const [name, ...rest] = w.split("/");
      const id = rest.join("/");
      const doc = txn.view.get(name!)!.get(id)!;
      this.coll(name!).set(id, { doc: cloneDoc(doc), ver: ++this.ver });
    }
    this.commits++;
  }

  client(): MongoClient {
    const fake = this;
    const sessionTxn = new WeakMap<object, Txn>();
    const txnOf = (opts?: { session?: object }) => (opts?.session ? sessionTxn.get(opts.session) : undefined);
    const tick = () => new Promise<void>((r) => setImmediate(r)); // let concurrent callers interleave

    const collection = (name: string) => ({
      createIndex: async (spec: Document, options: Document) => {
        fake.indexes.push({ collection: name, spec, options });
        return String(options.name);
      },
      findOne: async (filter: Document, opts?: { session?: object }) => {
        fake.beforeOp(name, "findOne", filter);
        await tick();
        const d = [...fake.view(name, txnOf(opts)).values()].find((x) => matches(x, filter));
        return d ? cloneDoc(d) : null;
      },
      find: (filter: Document, opts?: { session?: object }) => {
        let sortSpec: Document | undefined;
        let limitN = 0;
        const cursor = {
          sort: (s: Document) => ((sortSpec = s), cursor),
          limit: (n: number) => ((limitN = n), cursor),
          toArray: async () => {
            fake.beforeOp(name, "find", filter);
            await tick();
            let out = [...fake.view(name, txnOf(opts)).values()].filter((x) => matches(x, filter)).map(cloneDoc);
            if (sortSpec) {
              const [[field, dir]] = Object.entries(sortSpec) as [[string, number]];
              out.sort((a, b) => {
                const x = toBigInt(getPath(a, field));
                const y = toBigInt(getPath(b, field));
                return (x < y ? -1 : x > y ? 1 : 0) * dir;
              });
            }
            if (limitN > 0) out = out.slice(0, limitN);
            return out;
          },
        };
        return cursor;
      },
      bulkWrite: async (ops: AnyBulkWriteOperation<Document>[], opts?: { session?: object }) => {
        fake.beforeOp(name, "bulkWrite", {});
        await tick();
        return fake.write(name, ops, txnOf(opts));
      },
      updateOne: async (filter: Document, update: Document, opts?: { session?: object; upsert?: boolean }) => {
        fake.beforeOp(name, "updateOne", filter);
        await tick();
        return fake.write(name, [{ updateOne: { filter, update, upsert: opts?.upsert ?? false } }], txnOf(opts));
      },
    });

    const client = {
      connect: async () => client,
      close: async () => {
        fake.closed = true;
      },
      db: (name?: string) => ({
        databaseName: name,
        command: async (cmd: Document) => {
          fake.commands.push(cmd);
          return { ...fake.hello };
        },
        collection: (n: string) => collection(n),
        createCollection: async (n: string) => {
          if (fake.committed.has(n)) throw new MongoServerError({ message: `Collection ${n} already exists.`, code: 48 });
          fake.coll(n);
          fake.created.push(n);
          return collection(n);
        },
      }),
      startSession: () => {
        const session = {
          withTransaction: async <T>(fn: () => Promise<T>): Promise<T> => {
            for (;;) {
              const txn = fake.startTxn();
              sessionTxn.set(session, txn);
              try {
                const r = await fn();
                fake.commit(txn);
                return r;
              } catch (e) {
                if (e instanceof MongoServerError && e.hasErrorLabel("TransientTransactionError")) continue;
                throw e;
              } finally {
                sessionTxn.delete(session);
              }
            }
          },
          endSession: async () => {},
        };
        return session;
      },
    };
    return client as unknown as MongoClient;
  }

  private write(name: string, ops: AnyBulkWriteOperation<Document>[], txn: Txn | undefined) {
    if (txn) {
      const written = applyWrites(this.view(name, txn), ops, ID_OF[name]!);
      for (const id of written) txn.written.add(`${name}/${id}`);
    } else {
      const view = this.view(name, undefined);
      for (const id of applyWrites(view, ops, ID_OF[name]!)) this.coll(name).set(id, { doc: cloneDoc(view.get(id)!), ver: ++this.ver });
    }
    return { ok: 1 };
  }
}
