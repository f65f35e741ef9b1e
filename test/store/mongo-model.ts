/**
 * A test oracle for the pure update-document builders: the semantics of the update operators they
 * emit ($bit, $addToSet, $pull, $set, $unset, $setOnInsert, $inc; path conflicts) and of the query operators,
 * written from the MongoDB documentation. It is not a MongoDB: the store itself is only tested
 * against a real server (test/store/mongo.test.ts, when MONGODB_URI is set).
 */
import { Long, MongoServerError, type AnyBulkWriteOperation, type Document } from "mongodb";
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
        case "$unset": {
          const parts = path.split(".");
          const parent = getPath(doc, parts.slice(0, -1).join(".") || "") as Doc | undefined;
          if (parts.length === 1) delete doc[path];
          else if (parent && typeof parent === "object") delete parent[parts.at(-1)!];
          break;
        }
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
