/** Core configuration from the environment, validated at start so a bad value stops the server with a clear message. */
import { z } from "zod";
import { DEFAULT_LIMITS, type Limits } from "./domain/limits.js";

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const EnvSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  CONVMARK_DATA_DIR: z.string().min(1).default("./data"),
  // Not z.string().url(): WHATWG URLs reject the host lists of replica-set URIs (mongodb://h1,h2/...);
  // the driver parses the rest when it connects.
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\/\S+$/, "must be a mongodb:// or mongodb+srv:// connection string")
    .optional(),
  MONGODB_DB: z.string().min(1).default("convmark"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CONVMARK_READ_MAX_BYTES: int(1024, 1 << 30).default(32 << 20),
  CONVMARK_COMPRESS_MIN_BYTES: int(0, 1 << 30).default(1 << 20),
  CONVMARK_GATEWAY_MAX_BODY_BYTES: int(1024, 1 << 30).default(4 << 20),
  CONVMARK_SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  CONVMARK_MAX_UPDATES_PER_REQUEST: int(1, 1_000_000).default(DEFAULT_LIMITS.maxUpdatesPerRequest),
  CONVMARK_MAX_MARKED_PER_OWNER: int(1, 10_000_000).default(DEFAULT_LIMITS.maxMarkedPerOwner),
  CONVMARK_MAX_LABELS_PER_CONVERSATION: int(1, 10_000).default(DEFAULT_LIMITS.maxLabelsPerConversation),
  CONVMARK_MAX_PAGE_SIZE: int(1, 100_000).default(DEFAULT_LIMITS.maxPageSize),
  CONVMARK_WATCH_HEARTBEAT_MS: int(10, 3_600_000).default(15_000),
  CONVMARK_WATCH_MAX_BACKLOG: int(1, 10_000_000).default(10_000),
  CONVMARK_TOMBSTONE_RETENTION_SECONDS: int(1, 10 * 365 * 24 * 3600).default(30 * 24 * 3600),
});

export interface CoreConfig {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly mongo?: { readonly uri: string; readonly dbName: string };
  readonly logLevel: string;
  readonly readMaxBytes: number;
  /** Responses smaller than this are not compressed (on loopback and LANs gzip costs more CPU than it saves). */
  readonly compressMinBytes: number;
  /** Largest body a vendor REST route reads (ZEGO's largest request, 100 x 200 conversations, is < 1 MiB). */
  readonly gatewayMaxBodyBytes: number;
  readonly shutdownGraceMs: number;
  readonly limits: Limits;
  /** The change feed: Watch heartbeats, a watcher's backlog limit, how long tombstones stay. */
  readonly feed: { readonly heartbeatMs: number; readonly maxBacklog: number; readonly tombstoneRetentionMs: number };
}

/** Thrown for invalid configuration; main prints it and exits non-zero. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function zodProblems(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

export function coreConfigFromEnv(env: NodeJS.ProcessEnv): CoreConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid configuration: ${zodProblems(parsed.error)}`);
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.CONVMARK_DATA_DIR,
    ...(e.MONGODB_URI ? { mongo: { uri: e.MONGODB_URI, dbName: e.MONGODB_DB } } : {}),
    logLevel: e.LOG_LEVEL,
    readMaxBytes: e.CONVMARK_READ_MAX_BYTES,
    gatewayMaxBodyBytes: e.CONVMARK_GATEWAY_MAX_BODY_BYTES,
    compressMinBytes: e.CONVMARK_COMPRESS_MIN_BYTES,
    shutdownGraceMs: e.CONVMARK_SHUTDOWN_GRACE_MS,
    limits: {
      ...DEFAULT_LIMITS,
      maxUpdatesPerRequest: e.CONVMARK_MAX_UPDATES_PER_REQUEST,
      maxMarkedPerOwner: e.CONVMARK_MAX_MARKED_PER_OWNER,
      maxLabelsPerConversation: e.CONVMARK_MAX_LABELS_PER_CONVERSATION,
      maxPageSize: e.CONVMARK_MAX_PAGE_SIZE,
    },
    feed: {
      heartbeatMs: e.CONVMARK_WATCH_HEARTBEAT_MS,
      maxBacklog: e.CONVMARK_WATCH_MAX_BACKLOG,
      tombstoneRetentionMs: e.CONVMARK_TOMBSTONE_RETENTION_SECONDS * 1000,
    },
  };
}
