/**
 * A replay cache shared by the processes of one server: a small SQLite file (created by the primary,
 * removed when it exits) that every worker opens. A nonce is recorded by one atomic statement, so
 * two workers that see the same nonce at the same moment cannot both accept it.
 */
import Database from "better-sqlite3";

/** What the ZEGO verifier needs: record a nonce until it expires, false when it is already recorded. */
export interface NonceRegistry {
  checkAndRecord(nonce: string, expiresAtMs: number, nowMs: number): boolean;
}

export interface SharedNonceStore extends NonceRegistry {
  readonly size: number;
  close(): void;
}

export function openSharedNonceStore(path: string, maxEntries: number): SharedNonceStore {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // A replay cache lives only as long as the server; durability across a power cut is not needed.
  db.pragma("synchronous = OFF");
  db.pragma("busy_timeout = 5000");
  db.exec(`CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
           CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);`);
  // New, or recorded before but expired: (re)recorded, one change. Recorded and live: no change.
  const record = db.prepare(
    "INSERT INTO nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO UPDATE SET expires = excluded.expires WHERE nonces.expires <= ?",
  );
  const dropExpired = db.prepare("DELETE FROM nonces WHERE expires <= ?");
  const count = db.prepare("SELECT count(*) AS n FROM nonces").pluck();
  const dropOldest = db.prepare("DELETE FROM nonces WHERE nonce IN (SELECT nonce FROM nonces ORDER BY expires LIMIT ?)");
  let lastSweepMs = Number.NEGATIVE_INFINITY;
  const sweep = db.transaction((nowMs: number) => {
    dropExpired.run(nowMs);
    const n = count.get() as number;
    // Bounded like the in-memory cache: past maxEntries the entries expiring first go.
    if (n > maxEntries) dropOldest.run(n - maxEntries);
  });
  return {
    checkAndRecord(nonce, expiresAtMs, nowMs) {
      if (nowMs - lastSweepMs >= 1000) {
        lastSweepMs = nowMs;
        sweep(nowMs);
      }
      return record.run(nonce, expiresAtMs, nowMs).changes === 1;
    },
    get size() {
      return count.get() as number;
    },
    close: () => db.close(),
  };
}
