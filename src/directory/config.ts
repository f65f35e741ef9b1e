import { boolean, parseEnv, withDefault } from "../env.js";

export interface DirectoryConfig {
  /** CONVMARK_STRICT_DIRECTORY: refuse users, groups and memberships the directory does not know. */
  readonly strict: boolean;
}

export function directoryConfigFromEnv(env: NodeJS.ProcessEnv): DirectoryConfig {
  const e = parseEnv(env, { CONVMARK_STRICT_DIRECTORY: withDefault(boolean, false) });
  return { strict: e.CONVMARK_STRICT_DIRECTORY };
}
