/**
 * CNI errors: the spec's error object (`{cniVersion, code, msg, details}`), its well-known codes, netd's
 * own codes (the spec leaves 100 and up to plugins), and the one table that maps netd's typed errors
 * (src/errors.ts) to them. The daemon answers these on POST /netd/v1/cni with a fitting HTTP status; the
 * plugin prints them to stdout and exits 1.
 */
import { NetdError, asNetdError } from '../errors.js';

/** The CNI specification's error codes (SPEC.md, "Error"). */
export const CNI_CODE = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENVIRONMENT: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_NETWORK_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
} as const;

/** netd's own codes (100 and up): what its typed errors mean when they are not one of the spec's. */
export const NETD_CODE = {
  /** The request conflicts with existing state: ADD twice, an address or port in use, a name taken. */
  CONFLICT: 100,
  /** Not allowed on this object (a predefined network, the host's own namespace). */
  FORBIDDEN: 101,
  /** An external command (iptables-restore, ...) failed. */
  COMMAND_FAILED: 102,
  /** A program netd needs is not installed. */
  MISSING_TOOL: 103,
  /** CHECK found the attachment's kernel state different from netd's record. */
  CHECK_FAILED: 104,
  /** Something the command needs is gone (a network removed meanwhile); CHECK/DEL's "no such attachment" is code 3. */
  NOT_FOUND: 105,
  /** Anything else netd did not expect. */
  INTERNAL: 199,
} as const;

/** netd's typed errors (NetdError.code) → CNI codes. */
export const ERROR_CODE_TABLE: Readonly<Record<string, number>> = {
  invalid_argument: CNI_CODE.INVALID_NETWORK_CONFIG,
  not_found: NETD_CODE.NOT_FOUND,
  too_large: CNI_CODE.DECODE_FAILURE,
  kernel: CNI_CODE.IO_FAILURE,
  conflict: NETD_CODE.CONFLICT,
  forbidden: NETD_CODE.FORBIDDEN,
  command: NETD_CODE.COMMAND_FAILED,
  missing_tool: NETD_CODE.MISSING_TOOL,
};

/** HTTP status of a CNI error raised by netd's CNI layer itself (a typed error keeps its own status). */
const STATUS_OF_CODE: Readonly<Record<number, number>> = {
  [CNI_CODE.UNKNOWN_CONTAINER]: 404,
  [CNI_CODE.IO_FAILURE]: 500,
  [CNI_CODE.TRY_AGAIN_LATER]: 503,
  [CNI_CODE.NOT_AVAILABLE]: 409,
  [CNI_CODE.LIMITED_CONNECTIVITY]: 409,
  [NETD_CODE.CONFLICT]: 409,
  [NETD_CODE.FORBIDDEN]: 403,
  [NETD_CODE.CHECK_FAILED]: 409,
};

/** The spec's error object on the wire. */
export interface CniErrorBody {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** An error in CNI's terms: its code, a one-line message, optional details, and the HTTP status to answer with. */
export class CniError extends NetdError {
  readonly cniCode: number;
  readonly details?: string;
  constructor(cniCode: number, msg: string, details?: string, options?: { cause?: unknown; status?: number }) {
    super(msg, options?.status ?? STATUS_OF_CODE[cniCode] ?? (cniCode >= 100 ? 500 : 400), 'cni', options);
    this.cniCode = cniCode;
    if (details !== undefined) this.details = details;
  }

  toBody(cniVersion: string): CniErrorBody {
    return { cniVersion, code: this.cniCode, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Anything thrown, in CNI's terms: a CniError as it is, a typed netd error by the table, the rest INTERNAL. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const e = asNetdError(err);
  const code = ERROR_CODE_TABLE[e.code] ?? NETD_CODE.INTERNAL;
  const details = e.code === 'internal' ? undefined : `netd error ${e.code} (HTTP ${e.status})`;
  return new CniError(code, e.message, details, { cause: err, status: e.status });
}
