/** Linux address family numbers (include/linux/socket.h) and netd's 4 | 6. */
import type { Family } from '../net/index.js';

export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}
