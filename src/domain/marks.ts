/** Mark numbers are 1..64; mark n is bit n-1 of an unsigned 64-bit mask (kept as bigint to stay exact). */
export const MIN_MARK = 1;
export const MAX_MARK = 64;
const MASK64 = (1n << 64n) - 1n;

export function isValidMark(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_MARK && n <= MAX_MARK;
}

/** Mask of the given (already validated) mark numbers. */
export function maskOf(marks: Iterable<number>): bigint {
  let mask = 0n;
  for (const m of marks) mask |= 1n << BigInt(m - 1);
  return mask;
}

/**
 * Mark numbers set in the mask, ascending. The two 32-bit halves are walked as numbers: a bigint
 * shift per bit allocates a bigint each (mark 64 alone took 128), and every result of every
 * conversation returned (UpdateConversations(100): 100 per request) lists its marks.
 */
export function marksOf(mask: bigint): number[] {
  const out: number[] = [];
  const m = mask & MASK64;
  if (m === 0n) return out;
  let lo = Number(m & 0xffff_ffffn);
  let hi = Number(m >> 32n);
  for (let bit = 1; lo !== 0; bit++, lo >>>= 1) if (lo & 1) out.push(bit);
  for (let bit = 33; hi !== 0; bit++, hi >>>= 1) if (hi & 1) out.push(bit);
  return out;
}

/** Unsigned mask to the signed 64-bit integer SQLite and BSON store. */
export function toSigned64(mask: bigint): bigint {
  return BigInt.asIntN(64, mask);
}

/** Signed 64-bit integer from storage back to the unsigned mask. */
export function fromSigned64(value: bigint): bigint {
  return BigInt.asUintN(64, value);
}
