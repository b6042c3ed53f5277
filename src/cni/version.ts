/**
 * CNI versions: which ones netd speaks, how versions compare, and the compatibility rules: a config's
 * cniVersion must be one netd supports; CHECK exists from 0.4.0, GC and STATUS from 1.1.0.
 */
import { CNI_CODE, CniError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
/** What VERSION reports when stdin names no version. */
export const LATEST_VERSION = '1.1.0';

/** The first version each command exists in. */
const INTRODUCED: Readonly<Record<string, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

/** `a.b.c` as three numbers; undefined for anything else. */
export function parseVersion(text: unknown): [number, number, number] | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Negative, zero or positive as a is below, equal to or above b (both valid versions). */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a)!;
  const y = parseVersion(b)!;
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

export function isSupported(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** Results before 1.0.0 carry `ips[].version` (0.3.x, 0.4.0). */
export function isLegacyResult(version: string): boolean {
  return compareVersions(version, '1.0.0') < 0;
}

/** Refuses (code 1) a config version netd does not speak, or a command the version does not have. */
export function checkVersion(version: string, command: string): void {
  if (!isSupported(version)) {
    throw new CniError(CNI_CODE.INCOMPATIBLE_VERSION, `incompatible CNI version ${JSON.stringify(version)}`, `netd supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const since = INTRODUCED[command];
  if (since !== undefined && compareVersions(version, since) < 0) {
    throw new CniError(CNI_CODE.INCOMPATIBLE_VERSION, `${command} needs CNI ${since} or later; the configuration says ${version}`);
  }
}

/** VERSION's answer: the version asked about (stdin's cniVersion, else the latest) and the supported ones. */
export function versionInfo(asked: string | undefined): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: asked ?? LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
