/**
 * Typed errors. Every error netd raises on purpose is a NetdError: it carries the HTTP status the API
 * answers with and a stable code. Kernel failures keep their errno name and the operation that failed.
 */
export class NetdError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(message: string, status: number, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
  }
}

/** Bad input: the request itself is wrong (HTTP 400). */
export class InvalidArgumentError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 400, 'invalid_argument', options);
  }
}

/** The object asked for does not exist (HTTP 404). */
export class NotFoundError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 404, 'not_found', options);
  }
}

/** The path exists but not for this HTTP method (HTTP 405). */
export class MethodNotAllowedError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 405, 'method_not_allowed', options);
  }
}

/** The request conflicts with existing state: name taken, address in use, network has endpoints (HTTP 409). */
export class ConflictError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 409, 'conflict', options);
  }
}

/** The operation is not allowed on this object, e.g. removing a predefined network (HTTP 403). */
export class ForbiddenError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 403, 'forbidden', options);
  }
}

/** A kernel request failed. `errno` is the symbolic name (EEXIST, ENODEV, ...), `op` what was attempted. */
export class KernelError extends NetdError {
  readonly errno: string;
  readonly op: string;
  constructor(op: string, errno: string, detail?: string, options?: { cause?: unknown }) {
    super(`${op}: ${errno}${detail ? ` (${detail})` : ''}`, 500, 'kernel', options);
    this.errno = errno;
    this.op = op;
  }
}

/** An external command (iptables-restore, ...) failed. Carries its exit status and stderr. */
export class CommandError extends NetdError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string) {
    super(`${command} failed (exit ${exitCode}): ${stderr.trim().split('\n').slice(-3).join('; ')}`, 500, 'command');
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/**
 * A program netd runs (iptables-restore, conntrack, ...) is not installed. The message is one line that
 * names the Debian package providing it.
 */
export class MissingToolError extends NetdError {
  readonly tool: string;
  readonly pkg: string;
  constructor(tool: string, pkg: string) {
    super(`${tool} is not installed (or not in PATH): install the Debian package ${pkg} (apt-get install ${pkg})`, 500, 'missing_tool');
    this.tool = tool;
    this.pkg = pkg;
  }
}

/** The cluster store (etcd) did not answer: it is down, unreachable or too slow (HTTP 503). */
export class StoreUnavailableError extends NetdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 503, 'store_unavailable', options);
  }
}

/** Turns anything thrown into a NetdError, keeping the original as cause. */
export function asNetdError(err: unknown): NetdError {
  if (err instanceof NetdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new NetdError(message, 500, 'internal', { cause: err });
}
