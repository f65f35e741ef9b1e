// Tencent's reference UserSig generator (CommonJS, no types of its own).
declare module "tls-sig-api-v2" {
  export class Api {
    constructor(sdkAppId: number, secretKey: string);
    /** A UserSig for `identifier`, valid for `expireSeconds`. */
    genSig(identifier: string, expireSeconds: number): string;
  }
}
