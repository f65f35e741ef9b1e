/** The composition root: configuration → store → services → dialects → one listening port. */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { pino, type Logger } from "pino";
import { Registry, collectDefaultMetrics } from "prom-client";
import { MarkService } from "../gen/convmark/v1/mark_service_pb.js";
import { coreConfigFromEnv, type CoreConfig } from "./config.js";
import { anyTypeRegistry } from "./service/json-registry.js";
import { createMarkService } from "./service/mark-service.js";
import { buildApp, type App } from "./server/app.js";
import { createLoggingInterceptor, createMetricsInterceptor } from "./server/interceptors.js";
import { openMongoStore } from "./store/mongo-store.js";
import { openSqliteStore } from "./store/sqlite-store.js";
import type { MarkStore } from "./store/store.js";

export interface RunningConvmark {
  readonly app: App;
  readonly port: number;
  /** http://host:port, with 127.0.0.1 for a wildcard host. */
  readonly url: string;
  readonly config: CoreConfig;
  readonly logger: Logger;
  /** Closes the listener gracefully, then the store. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly logger?: Logger;
}

async function openStore(config: CoreConfig): Promise<MarkStore> {
  const limits = { maxMarkedPerOwner: config.limits.maxMarkedPerOwner, maxLabelsPerConversation: config.limits.maxLabelsPerConversation };
  if (config.mongo) return openMongoStore({ uri: config.mongo.uri, dbName: config.mongo.dbName, limits });
  mkdirSync(config.dataDir, { recursive: true });
  return openSqliteStore({ path: join(resolve(config.dataDir), "convmark.db"), limits });
}

/** Validates all configuration first (a bad value throws ConfigError before anything opens), then starts. */
export async function startConvmark(env: NodeJS.ProcessEnv, opts: StartOptions = {}): Promise<RunningConvmark> {
  const config = coreConfigFromEnv(env);
  const logger = opts.logger ?? pino({ level: config.logLevel });
  const store = await openStore(config);
  try {
    const metricsRegistry = new Registry();
    collectDefaultMetrics({ register: metricsRegistry });
    const interceptors = [createLoggingInterceptor(logger), createMetricsInterceptor(metricsRegistry)];

    const markService = createMarkService({ store, limits: config.limits });
    const markRoutes = (r: ConnectRouter) => r.service(MarkService, markService);
    // In-process client for the dialects: same interceptors, so logging and metrics apply once per call.
    const marks = createClient(MarkService, createRouterTransport(markRoutes, { router: { interceptors, readMaxBytes: config.readMaxBytes, jsonOptions: { registry: anyTypeRegistry } } }));
    void marks;

    const services: DescService[] = [MarkService];
    const app = await buildApp({
      routes: (router) => {
        markRoutes(router);
      },
      services,
      logger,
      metricsRegistry,
      readMaxBytes: config.readMaxBytes,
      jsonRegistry: anyTypeRegistry,
      shutdownGraceMs: config.shutdownGraceMs,
    });
    const address = await app.listen(config.port, config.host);
    const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
    logger.info({ port: address.port, host: config.host, store: config.mongo ? "mongodb" : "sqlite" }, "convmark listening");
    let closing: Promise<void> | undefined;
    return {
      app,
      port: address.port,
      url: `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`,
      config,
      logger,
      close() {
        closing ??= (async () => {
          try {
            await app.close();
          } finally {
            await store.close();
          }
        })();
        return closing;
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}
