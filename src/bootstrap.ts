/** The composition root: configuration → stores → services → dialects → one listening port. */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import { MarkService } from "../gen/convmark/v1/mark_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { clusterMetricsSource } from "./cluster/metrics.js";
import { openSharedKickList, openSharedNonceStore, type SharedKickList, type SharedNonceStore } from "./cluster/nonce-store.js";
import { NONCE_FILE } from "./cluster/primary.js";
import { nonceCapacity } from "./dialects/zego/auth.js";
import { authConfigFromEnv, authInterceptor, createAuthenticator, createCallAuthorizer, fixedCallerInterceptor, IN_PROCESS_CALLER, type AuthConfig } from "./auth/index.js";
import { ConfigError, coreConfigFromEnv, type CoreConfig } from "./config.js";
import type { Dialect, DialectDeps, GatewayResponse } from "./dialects/dialect.js";
import { createOpenimDialect, openimConfigFromEnv } from "./dialects/openim/index.js";
import { createTencentDialect, tencentConfigFromEnv } from "./dialects/tencent/index.js";
import { createZegoDialect, zegoConfigFromEnv } from "./dialects/zego/index.js";
import { DirectoryService, directoryConfigFromEnv, openDirectory, type Directory } from "./directory/index.js";
import { buildApp, type App } from "./server/app.js";
import { corsConfigFromEnv } from "./server/cors.js";
import { createHealthService, ServingStatus } from "./server/health.js";
import { createPublicEdge } from "./server/public-edge.js";
import { createSite, defaultConsoleDir } from "./server/site.js";
import { createProcessLogger, logStartSummary } from "./server/start-log.js";
import { createLoggingInterceptor, createMetricsInterceptor, createRpcRecorder } from "./server/interceptors.js";
import { leanUnaryRoute } from "./server/unary-route.js";
import { leanWatchRoute } from "./server/watch-route.js";
import type { DualProtocolServerOptions, NodeServerRequest, NodeServerResponse } from "./server/listener.js";
import { createInProcessTransport } from "./service/in-process-transport.js";
import { anyTypeRegistry } from "./service/json-registry.js";
import { createFeedHub } from "./service/feed-hub.js";
import { createMarkService } from "./service/mark-service.js";
import { clusterFeedPeers } from "./store/sqlite-feed.js";
import { openSqliteStore } from "./store/sqlite-store.js";
import type { MarkStore } from "./store/store.js";

export interface RunningConvmark {
  readonly app: App;
  readonly port: number;
  /** http://host:port, with 127.0.0.1 for a wildcard host. */
  readonly url: string;
  readonly config: CoreConfig;
  readonly logger: Logger;
  /** Closes the listener gracefully, then the stores. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly logger?: Logger;
  /** Set in a cluster worker: the primary's directory of state shared by all workers. */
  readonly cluster?: { readonly stateDir: string; readonly workers: number };
  /** Serve unary MarkService/DirectoryService calls on the lean route (unary-route.ts). Default true; false for differential tests. */
  readonly leanUnary?: boolean;
}

/** Every piece of configuration, parsed before anything opens: a bad value stops the start with ConfigError. */
export function configFromEnv(env: NodeJS.ProcessEnv) {
  return {
    core: coreConfigFromEnv(env),
    auth: authConfigFromEnv(env),
    cors: corsConfigFromEnv(env),
    directory: directoryConfigFromEnv(env),
    zego: zegoConfigFromEnv(env),
    tencent: tencentConfigFromEnv(env),
    openim: openimConfigFromEnv(env),
  };
}

async function openStores(
  config: CoreConfig,
  strict: boolean,
): Promise<{ store: MarkStore; directory: Directory; close(): Promise<void> }> {
  const limits = { maxMarkedPerOwner: config.limits.maxMarkedPerOwner, maxLabelsPerConversation: config.limits.maxLabelsPerConversation };
  if (config.mongo) {
    // Loaded only when used: the driver alone costs ~23 MB of memory.
    const { MongoClient } = await import("mongodb");
    const { openMongoStore } = await import("./store/mongo-store.js");
    // One client (one connection pool) for the marks and the directory.
    let unconnected: InstanceType<typeof MongoClient>;
    try {
      unconnected = new MongoClient(config.mongo.uri);
    } catch (e) {
      // The driver's own parser (host lists, options) rejects it before any connection is tried.
      throw new ConfigError(`invalid configuration: MONGODB_URI: ${(e as Error).message}`);
    }
    const client = await unconnected.connect();
    const opened: { close(): Promise<void> }[] = [];
    const closeAll = async () => {
      await Promise.allSettled(opened.map((o) => o.close()));
      await client.close();
    };
    try {
      const store = await openMongoStore({
        uri: config.mongo.uri,
        dbName: config.mongo.dbName,
        limits,
        client,
        tombstoneRetentionMs: config.feed.tombstoneRetentionMs,
      });
      opened.push(store);
      const directory = await openDirectory({ strict, mongo: { uri: config.mongo.uri, dbName: config.mongo.dbName, client } });
      opened.push(directory);
      return { store, directory, close: closeAll };
    } catch (e) {
      await closeAll();
      throw e;
    }
  }
  mkdirSync(config.dataDir, { recursive: true });
  // One file: the directory keeps its own tables beside the marks.
  const path = join(resolve(config.dataDir), "convmark.db");
  const peers = clusterFeedPeers(path); // the other workers of a cluster: exact live delivery across them
  const store = openSqliteStore({ path, limits, tombstoneRetentionMs: config.feed.tombstoneRetentionMs, ...(peers ? { peers } : {}) });
  try {
    const directory = await openDirectory({ strict, sqlitePath: path });
    return { store, directory, close: async () => void (await Promise.allSettled([directory.close(), store.close()])) };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Validates all configuration first, then opens the stores and starts listening. */
export async function startConvmark(env: NodeJS.ProcessEnv, opts: StartOptions = {}): Promise<RunningConvmark> {
  const config = configFromEnv(env);
  const core = config.core;
  const logger = opts.logger ?? createProcessLogger(core.logLevel);
  const { store, directory, close: closeStores } = await openStores(core, config.directory.strict);
  let nonces: SharedNonceStore | undefined;
  let kicks: SharedKickList | undefined;
  try {
    if (opts.cluster) nonces = openSharedNonceStore(join(opts.cluster.stateDir, NONCE_FILE), nonceCapacity(config.zego.rateLimitPerSecond));
    if (opts.cluster) kicks = openSharedKickList(join(opts.cluster.stateDir, NONCE_FILE), 100_000);
    const metricsRegistry = new Registry();
    collectDefaultMetrics({ register: metricsRegistry });
    const interceptors = [createLoggingInterceptor(logger), createMetricsInterceptor(metricsRegistry)];
    const authenticate = createAuthenticator(config.auth);
    // MarkService checks owners per item itself; DirectoryService is for service callers only.
    const authorize = createCallAuthorizer(authenticate, { perOwner: [MarkService.typeName], serviceOnly: [DirectoryService.typeName] });
    const auth = authInterceptor(authorize);

    // One hub per process: every Watch shares the store's one reader of new changes.
    const feed = createFeedHub(store, { maxBacklog: core.feed.maxBacklog });
    const markService = createMarkService({ store, limits: core.limits, guard: directory.guard, feed, heartbeatMs: core.feed.heartbeatMs });
    const markRoutes = (r: ConnectRouter) => r.service(MarkService, markService);
    // In-process client for the dialects: same interceptors, so logging and metrics apply once per
    // call. The dialects authenticated the vendor's way, so they call as a trusted in-process caller.
    const marks = createClient(
      MarkService,
      createInProcessTransport(MarkService, markService, [fixedCallerInterceptor(IN_PROCESS_CALLER), ...interceptors]),
    );
    const deps: DialectDeps = { marks, directory: directory.lookup, logger, now: Date.now, maxBodyBytes: core.gatewayMaxBodyBytes, ...(nonces ? { nonces } : {}), ...(kicks ? { kicks } : {}) };
    const dialects: Dialect[] = [
      createZegoDialect(deps, config.zego),
      createTencentDialect(deps, config.tencent),
      createOpenimDialect(deps, config.openim),
    ];
    const services: DescService[] = [MarkService, DirectoryService, ...dialects.flatMap((d) => d.services)];
    let app: App | undefined;
    const site = createSite({ health: () => ServingStatus[app?.health.get("") ?? ServingStatus.NOT_SERVING] ?? "UNKNOWN" });

    // REST calls run through the same interceptors as the Connect handler (logging, metrics, auth).
    const { edge } = createPublicEdge({
      services: [
        { service: MarkService, impl: markService },
        { service: DirectoryService, impl: directory.service },
      ] as never,
      interceptors: [...interceptors, auth],
      authenticate,
      cors: config.cors,
      registry: anyTypeRegistry,
      maxBodyBytes: core.readMaxBytes,
      metricsPath: "/metrics",
    });
    app = await buildApp({
      routes: (router) => {
        markRoutes(router);
        directory.routes(router);
        for (const d of dialects) d.routes(router);
      },
      services,
      logger,
      metricsRegistry,
      ...(opts.cluster ? { metricsText: clusterMetricsSource(metricsRegistry) } : {}),
      readMaxBytes: core.readMaxBytes,
      compressMinBytes: core.compressMinBytes,
      jsonRegistry: anyTypeRegistry,
      shutdownGraceMs: core.shutdownGraceMs,
      // A limit for the whole server: connections are dealt round-robin, so each worker takes its share.
      listener: {
        maxConnections: opts.cluster ? Math.max(1, Math.ceil(core.maxConnections / opts.cluster.workers)) : core.maxConnections,
        ...listenerOptions(core.listener),
      },
      gateway: (req, res) => routeToDialects(site, dialects, req, res),
      interceptors: [auth],
      // gRPC Watch calls on HTTP/2 take the lean route (watch-route.ts), well-formed unary calls of the
      // unified API the lean unary route (unary-route.ts); everything else goes on to connect-node.
      edge: (next, { health }) => {
        const record = createRpcRecorder(logger, metricsRegistry);
        const unary =
          opts.leanUnary === false
            ? next
            : leanUnaryRoute({
                services: [
                  { service: MarkService, impl: markService },
                  { service: DirectoryService, impl: directory.service },
                  // Health/Check and List: load balancers and probes call them all the time.
                  { service: Health, impl: createHealthService(health) },
                ],
                authorize,
                record,
                readMaxBytes: core.readMaxBytes,
                compressMinBytes: core.compressMinBytes,
                jsonOptions: { registry: anyTypeRegistry },
              })(next);
        return edge(leanWatchRoute({ deps: { store, limits: core.limits, feed, heartbeatMs: core.feed.heartbeatMs }, authenticate, record })(unary));
      },
      // Watch streams never finish by themselves: end them (cleanly, clients resume from their
      // cursor) before the listener waits for in-flight calls.
      beforeClose: () => feed.close(),
    });
    const address = await app.listen(core.port, core.host);
    const host = core.host === "0.0.0.0" || core.host === "::" ? "127.0.0.1" : core.host;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
    logStartSummary(
      logger,
      {
        url,
        host: core.host,
        port: address.port,
        store: core.mongo ? "mongodb" : "sqlite",
        ...(core.mongo ? { database: core.mongo.dbName } : { dataDir: resolve(core.dataDir) }),
        auth: authSummary(config.auth),
        strictDirectory: config.directory.strict,
        dialects: { zego: !!config.zego.credentials, tencent: config.tencent.sdkAppId !== undefined, openim: config.openim.secret !== undefined },
        consoleBuilt: existsSync(join(defaultConsoleDir(), "index.html")),
      },
      !opts.logger && process.stdout.isTTY === true,
    );
    logAuthMode(logger, config.auth, config.cors.origins);
    let closing: Promise<void> | undefined;
    const started = app;
    return {
      app: started,
      port: address.port,
      url,
      config: core,
      logger,
      close() {
        closing ??= (async () => {
          try {
            await started.close();
          } finally {
            nonces?.close();
            kicks?.close();
            await closeStores();
          }
        })();
        return closing;
      },
    };
  } catch (e) {
    nonces?.close();
    kicks?.close();
    await closeStores();
    throw e;
  }
}

/** The configured per-connection bounds as listener options (one idle timeout for both protocols). */
function listenerOptions(l: CoreConfig["listener"]): DualProtocolServerOptions {
  const { idleTimeoutMs, ...rest } = l;
  return { ...rest, socketIdleTimeoutMs: idleTimeoutMs, http2IdleTimeoutMs: idleTimeoutMs };
}

/** The auth mode in a few words, for the start-up summary. */
function authSummary(auth: AuthConfig): string {
  if (auth.mode === "protected") return "protected mode (no credentials configured): the unified API answers loopback clients only";
  if (auth.mode === "off") return "off (CONVMARK_AUTH=off): the unified API is open to every client";
  return `bearer tokens required (${[auth.secret !== undefined ? "HS256 secret" : "", auth.jwksFile ? "JWKS file" : ""].filter(Boolean).join(", ")})`;
}

/** Says at start who may call the unified API (protected mode as Redis says it). */
function logAuthMode(logger: Logger, auth: AuthConfig, origins: readonly string[] | "*"): void {
  const cors = origins === "*" ? "*" : origins.length > 0 ? origins.join(",") : "none";
  if (auth.mode === "protected") {
    logger.warn(
      { auth: "protected", cors },
      "protected mode: no credentials configured (CONVMARK_AUTH_JWT_SECRET / CONVMARK_AUTH_JWKS_FILE), so MarkService, DirectoryService, REST and /metrics answer only loopback clients with a loopback Host header; CONVMARK_AUTH=off opens them without authentication",
    );
  } else if (auth.mode === "off") {
    logger.warn({ auth: "off", cors }, "CONVMARK_AUTH=off: MarkService, DirectoryService, REST and /metrics are open to every client without authentication");
  } else {
    logger.info(
      { auth: "jwt", hs256: auth.secret !== undefined, jwksFile: auth.jwksFile, issuer: auth.issuer, audience: auth.audience, serviceScope: auth.serviceScope, cors },
      "bearer tokens required on MarkService, DirectoryService, REST and /metrics",
    );
  }
}

/**
 * The pages (GET /, /console), then vendor REST routes: each dialect claims its own paths; Connect
 * procedures (/pkg.Service/Method) fall through.
 */
async function routeToDialects(
  site: ReturnType<typeof createSite>,
  dialects: readonly Dialect[],
  req: NodeServerRequest,
  res: NodeServerResponse,
): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://convmark.invalid");
  if (site(req, res, url)) return true;
  // connect-node narrows the http2 response's write() signature; the object is Node's own response.
  const response = res as GatewayResponse;
  for (const d of dialects) {
    if (await d.handle(req, response, url)) return true;
  }
  return false;
}
