/**
 * OpenIM error codes and the API envelope. Codes and names: openimsdk/tools errs/code.go and
 * open-im-server pkg/common/servererrs/code.go; messages: errs/predefine.go. errDlt follows the
 * format of the seed and OpenIM's docs, "<detail>: [<code>]<name>" (pkg/errs/coderr.go, errors.Wrap).
 */
export const OpenimCode = {
  ServerInternalError: 500,
  ArgsError: 1001,
  NoPermissionError: 1002,
  RecordNotFoundError: 1004,
  UserIDNotFoundError: 1101,
  GroupIDNotFoundError: 1201,
  NotInGroupYetError: 1203,
  DismissedAlreadyError: 1204,
  TokenExpiredError: 1501,
  TokenInvalidError: 1502,
  TokenMalformedError: 1503,
  TokenNotValidYetError: 1504,
  TokenUnknownError: 1505,
  TokenKickedError: 1506,
  TokenNotExistError: 1507,
  /** open-im-server internal/api/ratelimit.go: errs.NewCodeError(http.StatusTooManyRequests, ...). */
  TooManyRequests: 429,
} as const;
export type OpenimCode = (typeof OpenimCode)[keyof typeof OpenimCode];

const NAMES: Record<OpenimCode, string> = {
  500: "ServerInternalError",
  1001: "ArgsError",
  1002: "NoPermissionError",
  1004: "RecordNotFoundError",
  1101: "UserIDNotFoundError",
  1201: "GroupIDNotFoundError",
  1203: "NotInGroupYetError",
  1204: "DismissedAlreadyError",
  1501: "TokenExpiredError",
  1502: "TokenInvalidError",
  1503: "TokenMalformedError",
  1504: "TokenNotValidYetError",
  1505: "TokenUnknownError",
  1506: "TokenKickedError",
  1507: "TokenNotExistError",
  429: "too many requests, please try again later",
};

/** A failure in OpenIM's terms: the code, its name (errMsg) and errDlt. */
export interface OpenimError {
  readonly errCode: OpenimCode;
  readonly errMsg: string;
  readonly errDlt: string;
}

export function openimError(code: OpenimCode, detail = ""): OpenimError {
  const name = NAMES[code];
  return { errCode: code, errMsg: name, errDlt: `${detail}: [${code}]${name}` };
}

export function isOpenimError(x: unknown): x is OpenimError {
  return typeof x === "object" && x !== null && "errCode" in x && "errDlt" in x;
}
