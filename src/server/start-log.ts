/** The process logger (pretty lines on a terminal, JSON otherwise) and the start-up summary it prints first. */
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

/** JSON lines for machines; pino-pretty's readable lines when stdout is a terminal. */
export function createProcessLogger(level: string, stream: NodeJS.WriteStream = process.stdout): Logger {
  if (!stream.isTTY) return pino({ level });
  return pino({ level }, pretty({ destination: stream, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", sync: true }));
}

export interface StartSummary {
  url: string;
  host: string;
  port: number;
  store: "sqlite" | "mongodb";
  /** The SQLite file's directory, or the MongoDB database name. */
  dataDir?: string;
  database?: string;
  auth: string;
  strictDirectory: boolean;
  /** Vendor dialect name → configured (credentials set) or not. */
  dialects: Record<string, boolean>;
  consoleBuilt: boolean;
}

/**
 * Everything an operator needs at first contact: one structured line for log pipelines, or, on a
 * terminal (readable), one short sentence per fact.
 */
export function logStartSummary(logger: Logger, s: StartSummary, readable: boolean): void {
  const configured = Object.entries(s.dialects).filter(([, on]) => on).map(([name]) => name);
  const notConfigured = Object.entries(s.dialects).filter(([, on]) => !on).map(([name]) => name);
  if (readable) {
    logReadable(logger, s, configured, notConfigured);
    return;
  }
  logger.info(
    {
      url: s.url,
      port: s.port,
      host: s.host,
      store: s.store,
      ...(s.dataDir !== undefined ? { dataDir: s.dataDir } : {}),
      ...(s.database !== undefined ? { database: s.database } : {}),
      auth: s.auth,
      strictDirectory: s.strictDirectory,
      dialects: configured,
      console: `${s.url}/console`,
      openapi: `${s.url}/openapi.json`,
    },
    "convmark listening",
  );
}

function logReadable(logger: Logger, s: StartSummary, configured: string[], notConfigured: string[]): void {
  logger.info(`convmark listening on ${s.url} (host ${s.host})`);
  logger.info(s.store === "sqlite" ? `store: embedded SQLite in ${s.dataDir}` : `store: MongoDB, database ${s.database}`);
  logger.info(`auth: ${s.auth}`);
  logger.info(`directory: ${s.strictDirectory ? "strict (unknown users and groups are refused)" : "open (any well-formed ID)"}`);
  logger.info(
    `vendor dialects configured: ${configured.length ? configured.join(", ") : "none"}` +
      (notConfigured.length ? ` (not configured, answering auth errors: ${notConfigured.join(", ")})` : ""),
  );
  logger.info(s.consoleBuilt ? `console: ${s.url}/console` : `console: not built (run npm run build), would be at ${s.url}/console`);
  logger.info(`API description: ${s.url}/openapi.json; metrics: ${s.url}/metrics; health: ${s.url}/healthz`);
}
