/** Names of the well-known marks (1..4, as ZEGO and Tencent number them); every other mark is its number. */
export const MARK_NAMES: Readonly<Record<number, string>> = Object.freeze({ 1: "star", 2: "unread", 3: "fold", 4: "hide" });

const BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(MARK_NAMES).map(([n, name]) => [name, Number(n)]));

/** "star" → 1, "33" → 33; undefined for anything else (the caller checks the 1..64 range). */
export function parseMarkName(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  const named = BY_NAME.get(t);
  if (named !== undefined) return named;
  return /^\d{1,3}$/.test(t) ? Number(t) : undefined;
}

/** 1 → "star", 33 → "33". */
export function markName(mark: number): string {
  return MARK_NAMES[mark] ?? String(mark);
}
