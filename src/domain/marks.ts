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

/** Mark numbers set in the mask, ascending. */
export function marksOf(mask: bigint): number[] {
  const out: number[] = [];
  let m = mask & MASK64;
  for (let bit = 1; m !== 0n; bit++, m >>= 1n) {
    if (m & 1n) out.push(bit);
  }
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
