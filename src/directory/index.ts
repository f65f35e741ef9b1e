/**
 * Everything the composition root needs from the directory, opened in one call:
 *
 *   const dirConfig = directoryConfigFromEnv(env);            // with the other config, before opening anything
 *   const directory = await openDirectory({ strict: dirConfig.strict, sqlitePath | mongo });
 *   createMarkService({ store, limits, guard: directory.guard });
 *   router.service(DirectoryService, directory.service);      // and DirectoryService in `services`
 *   dialect deps: { directory: directory.lookup, ... }
 *   on shutdown: await directory.close();
 */
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { MongoClient } from "mongodb";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import type { KeyGuard } from "../service/mark-service.js";
import type { DirectoryLookup } from "./directory.js";
import { createDirectoryGuard } from "./guard.js";
import { createDirectoryLookup } from "./lookup.js";
import { createDirectoryService, type DirectoryServiceOptions } from "./service.js";
import { openSqliteDirectory } from "./sqlite-directory.js";
import type { DirectoryStore } from "./store.js";

export { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
export { directoryConfigFromEnv, type DirectoryConfig } from "./config.js";
export type { DirectoryLookup, GroupInfo } from "./directory.js";
export { createDirectoryGuard } from "./guard.js";
export { createDirectoryLookup } from "./lookup.js";
export type { MongoDirectoryOptions } from "./mongo-directory.js";
export { createDirectoryService, type DirectoryServiceOptions } from "./service.js";
export { openSqliteDirectory, type SqliteDirectoryOptions } from "./sqlite-directory.js";
export type { DirectoryStore } from "./store.js";

export interface OpenDirectoryOptions extends DirectoryServiceOptions {
  readonly strict: boolean;
  /** SQLite file (the marks store's own file is fine: the directory uses its own tables). */
  readonly sqlitePath?: string;
  /** MongoDB instead of SQLite (a standalone mongod is enough: no transactions are used). */
  readonly mongo?: { readonly uri: string; readonly dbName?: string; readonly client?: MongoClient };
  readonly now?: () => number;
}

export interface Directory {
  readonly store: DirectoryStore;
  /** For DialectDeps.directory. */
  readonly lookup: DirectoryLookup;
  /** For createMarkService({ guard }); its verdicts are all undefined when not strict. */
  readonly guard: KeyGuard;
  /** convmark.v1.DirectoryService implementation. */
  readonly service: ServiceImpl<typeof DirectoryService>;
  /** Registers DirectoryService on a Connect router. */
  routes(router: ConnectRouter): void;
  close(): Promise<void>;
}

export async function openDirectory(opts: OpenDirectoryOptions): Promise<Directory> {
  if (!opts.mongo && !opts.sqlitePath) throw new Error("openDirectory needs sqlitePath or mongo");
  const now = opts.now ? { now: opts.now } : {};
  // The MongoDB adapter (and driver) is loaded only when used.
  const store = opts.mongo
    ? await (await import("./mongo-directory.js")).openMongoDirectory({ uri: opts.mongo.uri, ...(opts.mongo.dbName ? { dbName: opts.mongo.dbName } : {}), ...(opts.mongo.client ? { client: opts.mongo.client } : {}), ...now })
    : openSqliteDirectory({ path: opts.sqlitePath!, ...now });
  const lookup = createDirectoryLookup(store, { strict: opts.strict });
  const service = createDirectoryService(store, opts);
  return {
    store,
    lookup,
    guard: createDirectoryGuard(lookup),
    service,
    routes: (router) => router.service(DirectoryService, service),
    close: () => store.close(),
  };
}
