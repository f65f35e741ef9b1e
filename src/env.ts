/**
 * Environment helpers shared by every configuration schema (core, directory, dialects), so each
 * variable follows one rule: an empty or blank value is the same as leaving the variable unset
 * (the usual meaning of `FOO=` in env files and compose files); any other value must be valid or the
 * start fails with a ConfigError naming the variable.
 */
import { z } from "zod";

/** Thrown for invalid configuration; main prints it and exits with code 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** "VAR: problem; VAR2: problem" for a failed parse of an environment schema. */
export function zodProblems(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

/** A schema for a variable's text (what the environment holds). */
type Text<T> = z.ZodType<T, z.ZodTypeDef, string>;

const blankIsUnset = (v: unknown): unknown => (typeof v === "string" && v.trim() === "" ? undefined : v);

/** A variable that may be unset (undefined when unset or blank). */
export function optional<T>(text: Text<T>) {
  return z.preprocess(blankIsUnset, text.optional()) as unknown as z.ZodType<T | undefined, z.ZodTypeDef, string | undefined>;
}

/** A variable with a default when unset or blank. */
export function withDefault<T>(text: Text<T>, value: T) {
  return z.preprocess(blankIsUnset, text.optional().transform((v) => (v === undefined ? value : v))) as unknown as z.ZodType<
    T,
    z.ZodTypeDef,
    string | undefined
  >;
}

/** A decimal integer in [min, max] (no signs other than a leading "-", no exponents, no hex). */
export function integer(min: number, max: number): Text<number> {
  return z
    .string()
    .trim()
    .regex(/^-?\d{1,16}$/, "must be a decimal integer")
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
}

/** Any text, kept as given. */
export const text: Text<string> = z.string();

/** Comma-separated values, blanks around each trimmed, empty items dropped; at least one must remain. */
export function list(what: string): Text<string[]> {
  return z
    .string()
    .transform((s) => [...new Set(s.split(",").map((x) => x.trim()).filter((x) => x !== ""))])
    .pipe(z.array(z.string()).min(1, `must name at least one ${what} (comma-separated)`));
}

/** "1"/"true" or "0"/"false" (case-insensitive, blanks around ignored). */
export const boolean: Text<boolean> = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(["1", "true", "0", "false"], { errorMap: () => ({ message: 'must be "1", "true", "0" or "false"' }) }))
  .transform((s) => s === "1" || s === "true");

/** One of the given words (exact spelling). */
export function oneOf<const W extends readonly [string, ...string[]]>(words: W): Text<W[number]> {
  return z.string().trim().pipe(z.enum(words as unknown as [W[number], ...W[number][]], { errorMap: () => ({ message: `must be one of ${words.join(", ")}` }) }));
}

/**
 * Parses the variables of `shape` from env (other variables are ignored); a problem throws a
 * ConfigError "invalid <what>: VAR: problem".
 */
export function parseEnv<S extends z.ZodRawShape>(env: NodeJS.ProcessEnv, shape: S, what = "configuration"): z.output<z.ZodObject<S>> {
  const parsed = z.object(shape).safeParse(env);
  if (!parsed.success) throw new ConfigError(`invalid ${what}: ${zodProblems(parsed.error)}`);
  return parsed.data;
}
