/**
 * Address families. A family is 4 or 6; everything else about it (bit width, wildcard, linux AF_*
 * number) is derived here so no module re-derives it from the shape of a string.
 */
import { InvalidArgumentError } from '../errors.js';

export type Family = 4 | 6;

/** Address width in bits: 32 or 128. */
export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Address width in bytes: 4 or 16. */
export function bytesOf(family: Family): number {
  return family === 4 ? 4 : 16;
}

/** Checks a value is a family (4 or 6). */
export function parseFamily(value: unknown, what = 'address family'): Family {
  if (value !== 4 && value !== 6) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(value)}: 4 or 6`);
  return value;
}

/** How a value is named in an error message: strings quoted, other types by their type and value. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return typeof value;
  return `${typeof value} ${String(value)}`;
}
