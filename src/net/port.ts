/**
 * Ports (1-65535) and port ranges. Ports are plain numbers (branded by the checks here, not by a
 * wrapper): `checkPort` for numbers from JSON or code, `parsePort` for decimal text, `PortRange` for
 * `N` / `N-M` text.
 */
import { InvalidArgumentError } from '../errors.js';
import { describeValue } from './family.js';

export type Port = number;
export const MIN_PORT = 1;
export const MAX_PORT = 65535;

const PORT_TEXT_RE = /^[0-9]{1,5}$/;

export function isPort(value: unknown): value is Port {
  return typeof value === 'number' && Number.isInteger(value) && value >= MIN_PORT && value <= MAX_PORT;
}

/** A port given as a number (JSON, code). */
export function checkPort(value: unknown, what = 'port'): Port {
  if (!isPort(value)) throw new InvalidArgumentError(`invalid ${what} ${describeValue(value)}: expected an integer from ${MIN_PORT} to ${MAX_PORT}`);
  return value;
}

/**
 * Why `text` is not a port (decimal digits only, 1-65535), naming it (`"www" is not a port number`,
 * `0 is out of range (1-65535)`), or undefined if it is one.
 */
export function portTextProblem(text: string): string | undefined {
  if (!PORT_TEXT_RE.test(text)) return `${JSON.stringify(text)} is not a port number`;
  const n = Number(text);
  if (n < MIN_PORT || n > MAX_PORT) return `${n} is out of range (${MIN_PORT}-${MAX_PORT})`;
  return undefined;
}

/** A port given as text: decimal digits only. */
export function parsePort(text: unknown, what = 'port'): Port {
  const why = typeof text === 'string' ? portTextProblem(text) : `${describeValue(text)} is not a string`;
  if (why) throw new InvalidArgumentError(`invalid ${what}: ${why}`);
  return Number(text);
}

export class PortRange {
  private constructor(
    readonly start: Port,
    readonly end: Port,
  ) {
    Object.freeze(this);
  }

  static of(start: Port, end: Port = start): PortRange {
    checkPort(start);
    checkPort(end);
    if (end < start) throw new InvalidArgumentError(`port range ${start}-${end} ends before it starts`);
    return new PortRange(start, end);
  }

  /** `N` or `N-M` (N <= M). */
  static parse(text: unknown, what = 'port range'): PortRange {
    if (typeof text !== 'string') throw new InvalidArgumentError(`invalid ${what} ${describeValue(text)}`);
    const range = PortRange.tryParse(text, what);
    if (typeof range === 'string') throw new InvalidArgumentError(`invalid ${range}`);
    return range;
  }

  /**
   * `N` or `N-M` (N <= M), or why not, phrased after `what` ("host port 0 is out of range (1-65535)",
   * "host port range 81-80 ends before it starts"), for callers that word their own errors.
   */
  static tryParse(text: string, what: string): PortRange | string {
    const dash = text.indexOf('-');
    const parts = dash < 0 ? [text] : [text.slice(0, dash), text.slice(dash + 1)];
    for (const part of parts) {
      const why = portTextProblem(part);
      if (why) return `${what} ${why}`;
    }
    const start = Number(parts[0]);
    const end = Number(parts[parts.length - 1]);
    if (end < start) return `${what} range ${text} ends before it starts`;
    return new PortRange(start, end);
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  contains(port: Port): boolean {
    return port >= this.start && port <= this.end;
  }

  /** Whether the two ranges share a port. */
  overlaps(other: PortRange): boolean {
    return this.start <= other.end && other.start <= this.end;
  }

  toString(): string {
    return this.start === this.end ? String(this.start) : `${this.start}-${this.end}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
