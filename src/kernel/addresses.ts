/**
 * Interface addresses over rtnetlink: add, delete, list. Addresses go in and come out as
 * InterfaceAddress values (address plus on-link prefix length).
 */
import { FlagsNew } from 'netlink';
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, InterfaceAddress, parseFamily, type Family } from '../net/index.js';
import { afOf, familyOfAf } from './af.js';
import { checkIndex, type RtnlSocket } from './rtnl-socket.js';

export interface AddressInfo {
  index: number;
  /** The address with its prefix length, as configured on the link. */
  cidr: InterfaceAddress;
  family: Family;
}

function checkAddress(a: unknown): InterfaceAddress {
  if (!(a instanceof InterfaceAddress)) throw new InvalidArgumentError(`invalid interface address ${typeof a === 'string' ? JSON.stringify(a) : typeof a}: expected an InterfaceAddress`);
  return a;
}

/**
 * Adds an address to a link. IPv6 addresses get IFA_F_NODAD so they are usable at once (no duplicate
 * address detection delay). KernelError 'EEXIST' if the link already has it.
 */
export async function addAddress(sock: RtnlSocket, index: number, address: InterfaceAddress): Promise<void> {
  checkIndex(index);
  const a = checkAddress(address);
  const bytes = a.address.toNetlink();
  const flags = a.family === 6 ? { nodad: true as const } : {};
  await sock.call(`add address ${a} to link #${index}`, (s, timeout) =>
    s.newAddress(
      { family: afOf(a.family), prefixlen: a.length, index, scope: 0, flags },
      { local: bytes, address: bytes, flags },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL, timeout },
    ),
  );
}

/** Removes an address from a link. KernelError 'EADDRNOTAVAIL' if it is not there. */
export async function deleteAddress(sock: RtnlSocket, index: number, address: InterfaceAddress): Promise<void> {
  checkIndex(index);
  const a = checkAddress(address);
  const bytes = a.address.toNetlink();
  await sock.call(`delete address ${a} from link #${index}`, (s, timeout) =>
    s.delAddress({ family: afOf(a.family), prefixlen: a.length, index }, { local: bytes, address: bytes }, { timeout }),
  );
}

/** Addresses of all links, optionally of one family. */
export async function listAddresses(sock: RtnlSocket, family?: Family): Promise<AddressInfo[]> {
  if (family !== undefined) parseFamily(family);
  const msgs = await sock.call(
    'list addresses',
    (s, timeout) => s.getAddresses({ family: family === undefined ? 0 : afOf(family) }, undefined, { timeout }),
    true,
  );
  const out: AddressInfo[] = [];
  for (const m of msgs) {
    const f = familyOfAf(m.data.family ?? 0);
    const bytes = m.attrs.local ?? m.attrs.address; // IFA_LOCAL is the interface's own address (IPv4)
    if (f === undefined || !bytes || (family !== undefined && f !== family)) continue;
    out.push({ index: m.data.index ?? 0, cidr: InterfaceAddress.of(IPAddress.fromBytes(bytes), m.data.prefixlen ?? 0), family: f });
  }
  return out;
}
