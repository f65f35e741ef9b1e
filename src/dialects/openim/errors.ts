/**
 * OpenIM error codes and the API envelope. Codes and names: openimsdk/tools errs/code.go and
 * open-im-server pkg/common/servererrs/code.go; messages: errs/predefine.go. errDlt of an error the
 * RPC layer raises follows the format of the seed and OpenIM's docs, "<detail>: [<code>]<name>";
 * errors of the API layer (gin middleware, body binding, the request's Check()) have an empty
 * errDlt, as the released server prints them (apiLayerError, bindError below).
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

/**
 * An error of OpenIM's API layer, raised before any RPC: a missing operationID (tools mw/gin.go
 * GinParseOperationID) or token header (open-im-server internal/api/router.go GinParseToken), or a
 * failed Check() of the request (tools checker.Validate). Each is `errs.ErrArgs.WrapMsg(text)`, and
 * tools v0.0.50-alpha.67 (pinned by v3.8.3) apiresp.ParseError prints `codeErr.Detail()` as errDlt:
 * ErrArgs has no detail (WrapMsg only wraps), so errDlt is "" and the text is in the server log only.
 */
export function apiLayerError(code: OpenimCode): OpenimError {
  return { errCode: code, errMsg: NAMES[code], errDlt: "" };
}

/**
 * A body gin's binding could not decode: tools a2r.ParseRequestNotCheck answers
 * `errs.NewCodeError(ArgsError, err.Error())`, so the decoder's message is errMsg and errDlt is "".
 */
export function bindError(message: string): OpenimError {
  return { errCode: OpenimCode.ArgsError, errMsg: message, errDlt: "" };
}

export function isOpenimError(x: unknown): x is OpenimError {
  return typeof x === "object" && x !== null && "errCode" in x && "errDlt" in x;
}
