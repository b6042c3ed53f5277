/**
 * CHECK's `prevResult` (the result the runtime cached from ADD) against netd's record of the attachment:
 * the spec has a plugin verify that what prevResult says still holds. Its interface CNI_IFNAME in a sandbox
 * must be there, in CNI_NETNS, with the recorded MAC; the addresses prevResult puts on it (or on no interface)
 * must be exactly the recorded ones. As the reference plugins do, entries of other plugins in a chain (other
 * interfaces, host-side ones, addresses on other interfaces) are left alone. Each difference is one line; the
 * kernel is compared with the record separately (the driver's check).
 */
import { InterfaceAddress, MAC } from '../net/index.js';

/** What netd recorded of the attachment, as plain values. */
export interface RecordedAttachment {
  ifname: string;
  mac?: string;
  /** CNI_NETNS of this CHECK. */
  sandbox: string;
  /** `address/length`, v4 and/or v6. */
  addresses: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Same MAC, whatever the spelling; false when either does not parse. */
function sameMac(a: string, b: string): boolean {
  try {
    return MAC.parse(a).toString() === MAC.parse(b).toString();
  } catch {
    return false;
  }
}

/** `a/len` in a canonical spelling, or undefined when it does not parse. */
function canonical(address: unknown): string | undefined {
  try {
    return InterfaceAddress.parse(address).toString();
  } catch {
    return undefined;
  }
}

/** The differences between prevResult and the record (empty: they agree). A prevResult that is not a result is one. */
export function comparePrevResult(prev: unknown, rec: RecordedAttachment): string[] {
  if (!isObject(prev)) return ['prevResult is not a result object'];
  const problems: string[] = [];
  const interfaces = prev.interfaces ?? [];
  const ips = prev.ips ?? [];
  if (!Array.isArray(interfaces) || !interfaces.every(isObject)) return ['prevResult.interfaces is not a list of interfaces'];
  if (!Array.isArray(ips) || !ips.every(isObject)) return ['prevResult.ips is not a list of addresses'];

  let containerIndex: number | undefined;
  interfaces.forEach((itf, i) => {
    const name = typeof itf.name === 'string' ? itf.name : '';
    const mac = typeof itf.mac === 'string' && itf.mac !== '' ? itf.mac : undefined;
    const sandbox = typeof itf.sandbox === 'string' && itf.sandbox !== '' ? itf.sandbox : undefined;
    if (sandbox === undefined || name !== rec.ifname) return;
    if (containerIndex !== undefined) problems.push(`prevResult lists ${name} in a sandbox twice`);
    containerIndex = i;
    if (sandbox !== rec.sandbox) problems.push(`prevResult puts ${name} in sandbox ${sandbox}, not CNI_NETNS ${rec.sandbox}`);
    if (mac !== undefined && (rec.mac === undefined || !sameMac(mac, rec.mac))) problems.push(`prevResult gives ${name} MAC ${mac}; netd's record has ${rec.mac ?? 'none'}`);
  });
  if (containerIndex === undefined) problems.push(`prevResult has no interface ${rec.ifname} in the sandbox`);

  const recorded = new Set(rec.addresses.map((a) => canonical(a) ?? a));
  const claimed = new Set<string>();
  for (const ip of ips) {
    // An address on another plugin's interface is that plugin's to check.
    if (ip.interface !== undefined && ip.interface !== containerIndex) continue;
    const address = canonical(ip.address);
    if (address === undefined) {
      problems.push(`prevResult has an invalid address ${JSON.stringify(ip.address)}`);
      continue;
    }
    claimed.add(address);
    if (!recorded.has(address)) problems.push(`prevResult has address ${address}; netd's record has ${[...recorded].join(', ') || 'none'}`);
  }
  for (const address of recorded) if (!claimed.has(address)) problems.push(`prevResult lacks address ${address}, which netd's record has`);
  return problems;
}
