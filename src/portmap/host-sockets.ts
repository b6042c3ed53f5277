/**
 * Ports already bound by processes in the daemon's network namespace (the host), read from
 * /proc/self/net/{udp,udp6} (and sctp/eps when SCTP is loaded; tcp/tcp6 too, though the publisher probes
 * TCP with a bind instead, see bind-probe.ts). A published port DNATs new connections before they reach a
 * local socket, so a port a host process uses must not be published over it.
 *
 * Reads are synchronous on purpose: /proc/self/net is the namespace of the process's main thread, and an
 * asynchronous read could land while the main thread is inside another namespace (see kernel/netns.ts).
 */
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { IPAddress, PortRange } from '../net/index.js';
import { WILDCARD, familyOf, type IpFamily, type Proto } from './types.js';

export interface HostSocket {
  proto: Proto;
  family: IpFamily;
  /** Canonical local address; an IPv4-mapped IPv6 address is reported as the IPv4 address. */
  address: string;
  port: number;
}

const TCP_LISTEN = '0A';

/** Decodes /proc/net's hex address: 32-bit words in host byte order. */
export function decodeProcAddress(hex: string, littleEndian = endianness() === 'LE'): string {
  if (!/^[0-9A-Fa-f]{8}$|^[0-9A-Fa-f]{32}$/.test(hex)) throw new Error(`unexpected address ${hex} in /proc/net`);
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = Buffer.from(hex.slice(w * 8, w * 8 + 8), 'hex');
    if (littleEndian) word.reverse();
    word.copy(bytes, w * 4);
  }
  // ::ffff:a.b.c.d (a dual-stack socket bound to an IPv4 address) is an IPv4 binding.
  return IPAddress.fromBytes(bytes).unmapped().toString();
}

/** Parses one /proc/net/{tcp,udp}[6] table. TCP: listening sockets only; UDP: every bound socket. */
export function parseProcNet(text: string, proto: 'tcp' | 'udp', littleEndian?: boolean): HostSocket[] {
  const out: HostSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const [addrHex, portHex] = fields[1].split(':');
    if (proto === 'tcp' && fields[3] !== TCP_LISTEN) continue;
    const port = parseInt(portHex, 16);
    if (!(port > 0)) continue;
    const address = decodeProcAddress(addrHex, littleEndian);
    out.push({ proto, family: familyOf(address), address, port });
  }
  return out;
}

/** Parses /proc/net/sctp/eps: LPORT is decimal, LADDRS a space-separated address list. */
export function parseSctpEps(text: string): HostSocket[] {
  const out: HostSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 9) continue;
    const port = Number(fields[5]);
    if (!(port > 0)) continue;
    for (const address of fields.slice(8)) {
      try {
        out.push({ proto: 'sctp', family: familyOf(address), address, port });
      } catch {
        /* not an address column */
      }
    }
  }
  return out;
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A snapshot of the host's bound ports. */
export class HostSockets {
  constructor(readonly sockets: readonly HostSocket[]) {}

  static read(protos: readonly Proto[] = ['tcp', 'udp', 'sctp'], root = '/proc/self/net'): HostSockets {
    return new HostSockets([
      ...(protos.includes('tcp') ? [...parseProcNet(readOptional(`${root}/tcp`), 'tcp'), ...parseProcNet(readOptional(`${root}/tcp6`), 'tcp')] : []),
      ...(protos.includes('udp') ? [...parseProcNet(readOptional(`${root}/udp`), 'udp'), ...parseProcNet(readOptional(`${root}/udp6`), 'udp')] : []),
      ...(protos.includes('sctp') ? parseSctpEps(readOptional(`${root}/sctp/eps`)) : []),
    ]);
  }

  /**
   * Every host socket a binding of a port range would shadow, by port (one pass, whatever the range's
   * length): same protocol, a port in the range, and addresses that overlap (equal, or either a
   * wildcard). A socket on `::` may be dual-stack, so it also counts against IPv4.
   */
  conflicts(proto: Proto, hostIp: string, range: PortRange): HostSocket[] {
    const family = familyOf(hostIp);
    return this.sockets
      .filter((s) => {
        if (s.proto !== proto || !range.contains(s.port)) return false;
        if (s.family === family) return s.address === hostIp || s.address === WILDCARD[family] || hostIp === WILDCARD[family];
        return family === 4 && s.address === WILDCARD[6];
      })
      .sort((a, b) => a.port - b.port);
  }
}
