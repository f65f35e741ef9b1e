/**
 * A replay cache shared by the processes of one server: a small SQLite file (created by the primary,
 * removed when it exits) that every worker opens. A nonce is recorded by one atomic statement, so
 * two workers that see the same nonce at the same moment cannot both accept it.
 */
import Database from "better-sqlite3";

/** What the ZEGO verifier needs from a replay cache (the in-memory NonceCache is the other one). */
export interface NonceRegistry {
  /** Whether the nonce is recorded and not expired. */
  has(nonce: string): boolean;
  /** Records the nonce for ttlMs: "replay" if it is already recorded, "full" if there is no room. */
  record(nonce: string, ttlMs: number): "recorded" | "replay" | "full";
}

export interface SharedNonceStore extends NonceRegistry {
  readonly size: number;
  close(): void;
}

/** Opens (creating if needed) the shared cache at `path`; holds at most `capacity` live nonces server-wide. */
export function openSharedNonceStore(path: string, capacity: number, now: () => number = Date.now): SharedNonceStore {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // A replay cache lives only as long as the server; durability across a power cut is not needed.
  db.pragma("synchronous = OFF");
  db.pragma("busy_timeout = 5000");
  db.exec(`CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
           CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
           -- The number of rows in nonces, kept in the same transactions (count(*) would read them all).
           CREATE TABLE IF NOT EXISTS nonce_count (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
           INSERT OR IGNORE INTO nonce_count (id, n) VALUES (0, 0);`);
  const live = db.prepare("SELECT 1 FROM nonces WHERE nonce = ? AND expires > ?").pluck();
  // New, or recorded before but expired: (re)recorded, one change. Recorded and live: no change.
  const insert = db.prepare(
    "INSERT INTO nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO UPDATE SET expires = excluded.expires WHERE nonces.expires <= ?",
  );
  const exists = db.prepare("SELECT 1 FROM nonces WHERE nonce = ?").pluck();
  const dropExpired = db.prepare("DELETE FROM nonces WHERE expires <= ?");
  const getCount = db.prepare("SELECT n FROM nonce_count WHERE id = 0").pluck();
  const addCount = db.prepare("UPDATE nonce_count SET n = n + ? WHERE id = 0");
  const sweep = (nowMs: number) => {
    const dropped = dropExpired.run(nowMs).changes;
    if (dropped) addCount.run(-dropped);
  };
  let lastSweepMs = Number.NEGATIVE_INFINITY;
  // IMMEDIATE: take the write lock first, so two workers never both read "room for one more".
  const recordTx = db.transaction((nonce: string, ttlMs: number, nowMs: number): "recorded" | "replay" | "full" => {
    if (nowMs - lastSweepMs >= 1000) {
      lastSweepMs = nowMs;
      sweep(nowMs);
    }
    if (live.get(nonce, nowMs) !== undefined) return "replay";
    if ((getCount.get() as number) >= capacity) {
      sweep(nowMs);
      if ((getCount.get() as number) >= capacity) return "full";
    }
    const existed = exists.get(nonce) !== undefined;
    insert.run(nonce, nowMs + Math.max(1, ttlMs), nowMs);
    if (!existed) addCount.run(1);
    return "recorded";
  });
  return {
    has(nonce) {
      return live.get(nonce, now()) !== undefined;
    },
    record(nonce, ttlMs) {
      return recordTx.immediate(nonce, ttlMs, now());
    },
    get size() {
      return db.transaction(() => {
        sweep(now());
        return getCount.get() as number;
      }).immediate();
    },
    close: () => db.close(),
  };
}

/** A bounded key → number map (OpenIM's force_logout times); lru-cache's LRUCache fits it. */
export interface KickRegistry {
  get(key: string): number | undefined;
  set(key: string, value: number): unknown;
}

export interface SharedKickList extends KickRegistry {
  close(): void;
}

/**
 * The same for OpenIM's force_logout: a token kicked through one worker is refused by every worker.
 * Bounded like the in-memory cache: past `capacity` entries the oldest kicks go.
 */
export function openSharedKickList(path: string, capacity: number): SharedKickList {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  db.pragma("busy_timeout = 5000");
  db.exec("CREATE TABLE IF NOT EXISTS kicks (key TEXT PRIMARY KEY, at INTEGER NOT NULL, seq INTEGER NOT NULL)");
  const get = db.prepare("SELECT at FROM kicks WHERE key = ?").pluck();
  const put = db.prepare(
    "INSERT INTO kicks (key, at, seq) VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM kicks)) ON CONFLICT (key) DO UPDATE SET at = excluded.at, seq = excluded.seq",
  );
  const trim = db.prepare("DELETE FROM kicks WHERE seq <= (SELECT max(seq) FROM kicks) - ?");
  const set = db.transaction((key: string, value: number) => {
    put.run(key, value);
    trim.run(capacity);
  });
  return {
    get: (key) => get.get(key) as number | undefined,
    set: (key, value) => set.immediate(key, value),
    close: () => db.close(),
  };
}
