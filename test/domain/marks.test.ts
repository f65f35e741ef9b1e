import { describe, expect, it } from "vitest";
import { MAX_MARK, MIN_MARK, fromSigned64, isValidMark, marksOf, maskOf, toSigned64 } from "../../src/domain/marks.js";
import { prng } from "../support/prng.js";

const ALL_64 = Array.from({ length: 64 }, (_, i) => i + 1);
const FULL_MASK = 18446744073709551615n; // 2^64 - 1
const SIGN_BIT = 9223372036854775808n; // 2^63

describe("mark bounds", () => {
  it("are 1..64", () => {
    expect(MIN_MARK).toBe(1);
    expect(MAX_MARK).toBe(64);
  });
});

describe("maskOf / marksOf", () => {
  it("maps mark n to bit n-1", () => {
    expect(maskOf([])).toBe(0n);
    expect(maskOf([1])).toBe(1n);
    expect(maskOf([2])).toBe(2n);
    expect(maskOf([4])).toBe(8n);
    expect(maskOf([1, 2, 3, 4])).toBe(15n);
    expect(maskOf([33])).toBe(4294967296n);
    expect(maskOf([63])).toBe(4611686018427387904n);
  });

  it("mark 64 is the sign bit of a 64-bit word, kept unsigned", () => {
    expect(maskOf([64])).toBe(SIGN_BIT);
    expect(maskOf([64]) > 0n).toBe(true);
    expect(marksOf(SIGN_BIT)).toEqual([64]);
  });

  it("all 64 marks give 2^64-1 and back", () => {
    expect(maskOf(ALL_64)).toBe(FULL_MASK);
    expect(marksOf(FULL_MASK)).toEqual(ALL_64);
  });

  it("duplicates and order do not matter to maskOf", () => {
    expect(maskOf([64, 1, 64, 1, 3])).toBe(SIGN_BIT | 5n);
  });

  it("marksOf is ascending", () => {
    expect(marksOf(SIGN_BIT | 5n)).toEqual([1, 3, 64]);
    expect(marksOf(0n)).toEqual([]);
  });

  it("round trips every single mark", () => {
    for (const m of ALL_64) {
      const mask = maskOf([m]);
      expect(mask).toBe(2n ** BigInt(m - 1));
      expect(marksOf(mask)).toEqual([m]);
    }
  });

  it("round trips assorted sets", () => {
    const sets = [[1, 64], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61], [32, 33], [63, 64], ALL_64.filter((m) => m % 2 === 0)];
    for (const s of sets) expect(marksOf(maskOf(s))).toEqual(s);
  });

  it("marksOf of seeded random masks is the bit-by-bit reading of the mask", () => {
    const rand = prng(64);
    for (let i = 0; i < 2000; i++) {
      let mask = 0n;
      for (let k = Math.floor(rand() * 9); k > 0; k--) mask |= 1n << BigInt(Math.floor(rand() * 64));
      if (i % 7 === 0) mask = -mask; // a signed form
      const bits = BigInt.asUintN(64, mask).toString(2).split("").reverse();
      expect(marksOf(mask)).toEqual(bits.flatMap((b, j) => (b === "1" ? [j + 1] : [])));
    }
  });

  it("marksOf ignores bits above 64 and reads a signed value as its unsigned form", () => {
    expect(marksOf((1n << 64n) | 1n)).toEqual([1]);
    expect(marksOf(-1n)).toEqual(ALL_64);
    expect(marksOf(-9223372036854775808n)).toEqual([64]);
  });
});

describe("toSigned64 / fromSigned64", () => {
  const cases: [unsigned: bigint, signed: bigint][] = [
    [0n, 0n],
    [1n, 1n],
    [9223372036854775807n, 9223372036854775807n],
    [SIGN_BIT, -9223372036854775808n],
    [SIGN_BIT | 1n, -9223372036854775807n],
    [FULL_MASK, -1n],
    [FULL_MASK - 1n, -2n],
  ];

  it.each(cases)("%s <-> %s", (u, s) => {
    expect(toSigned64(u)).toBe(s);
    expect(fromSigned64(s)).toBe(u);
    expect(fromSigned64(toSigned64(u))).toBe(u);
    expect(toSigned64(fromSigned64(s))).toBe(s);
  });

  it("signed results stay within SQLite's INTEGER range", () => {
    for (const [u] of cases) {
      const s = toSigned64(u);
      expect(s >= -(2n ** 63n) && s <= 2n ** 63n - 1n).toBe(true);
    }
  });
});

describe("isValidMark", () => {
  it.each([
    [0, false],
    [1, true],
    [2, true],
    [63, true],
    [64, true],
    [65, false],
    [1.5, false],
    [64.5, false],
    [-1, false],
    [Number.NaN, false],
    [Number.POSITIVE_INFINITY, false],
  ])("%s -> %s", (n, ok) => {
    expect(isValidMark(n)).toBe(ok);
  });
});
