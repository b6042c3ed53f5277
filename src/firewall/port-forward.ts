/**
 * What the firewall layer is told about an endpoint's published ports (PortForwardSpec), its validation
 * into a normalised form, and the rules it becomes.
 *
 * Each endpoint with published ports owns one chain per table it needs, `NETD-PF-<endpoint id12>`,
 * reached through a bucket chain `NETD-PFB-<first 2 hex of the id>` (256 buckets, made when first used;
 * a daemon's instance id goes into both names and into the comments, see marks.ts):
 *   nat     NETD -j NETD-PFB-ab                                (NETD is reached from PREROUTING and OUTPUT
 *           NETD-PFB-ab -j NETD-PF-x                            for local destinations)
 *           NETD-PF-x [-d HOST_IP] -p P -m P --dport HP -j DNAT --to-destination C:CP   one per mapping;
 *           a range is one rule whatever its length: `--dport A:B -j DNAT --to-destination C` when host and
 *           container ports are equal, else the kernel's port offset `--to-destination C:P-Q/A`
 *   filter  only in routed gateway mode: NETD -j NETD-PFB-ab at the top, NETD-PFB-ab -j NETD-PF-x, and
 *           NETD-PF-x -d C ! -i br -o br -p P -m P --dport CP[:CQ] -j ACCEPT (direct access to the container ports)
 * Endpoint rules carry the comment `netd:pf:<endpoint id12>`, bucket jumps `netd:pf`. What lets DNATed
 * traffic in, masquerades hairpin and localhost flows and drops martian 127/8 packets is per network or
 * base (see iptables.ts). So publishing is: declare a chain, fill it, append one jump to a bucket. No
 * chain that grows with the number of endpoints is ever appended to: with iptables-nft, appending to a
 * chain costs time in proportion to its length (10000 jumps in NETD: ~12 ms per append).
 */
import { InvalidArgumentError } from '../errors.js';
import { FirewallMarks } from './marks.js';
import { IPAddress, Prefix, checkPort, checkProto, parseFamily, parseFirewallIfName, type Family, type IfName, type Proto } from '../net/index.js';
import type { PlacedRule, Rule, Table, Target } from './model.js';

export interface PortForwardMapping {
  proto: Proto;
  /** Host address; 0.0.0.0 or :: for every address of that family. Its family picks the container address. */
  hostIp: IPAddress;
  hostPort: number;
  containerPort: number;
  /** Last host port of a range: hostPort+i goes to containerPort+i. Absent for a single port. */
  hostPortEnd?: number;
}

/** How many ports a mapping forwards. */
export function mappingSpan(m: PortForwardMapping): number {
  return (m.hostPortEnd ?? m.hostPort) - m.hostPort + 1;
}

export interface PortForwardSpec {
  /** Endpoint id, 64 lower-case hex characters. */
  endpointId: string;
  /** The bridge the container is on. */
  bridge: string;
  /** The container's addresses on that bridge, without prefix. */
  containerV4?: IPAddress;
  containerV6?: IPAddress;
  ports: PortForwardMapping[];
  /** Families whose gateway mode is "routed": published container ports are also reachable directly. */
  routed?: Family[];
}

/** One family's part of a forward, validated. */
export interface FamilyForward {
  readonly container: IPAddress;
  readonly mappings: readonly PortForwardMapping[];
  readonly routed: boolean;
}

export interface FirewallForward {
  readonly endpointId: string;
  readonly id12: string;
  readonly tag: string;
  /** Chain name, the same in each table that has one. */
  readonly chain: string;
  /** The bucket chain it is reached through. */
  readonly bucket: string;
  /** The comment of the jump into the bucket (shared by the bucket's endpoints). */
  readonly bucketTag: string;
  readonly bridge: IfName;
  readonly v4?: FamilyForward;
  readonly v6?: FamilyForward;
}

/** A single address: a real IPAddress value. */
function address(value: unknown, what: string): IPAddress {
  if (!(value instanceof IPAddress)) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(value)}: expected an IPAddress`);
  return value;
}

/** One mapping, validated; a one-port range is a single port. */
function normalizeMapping(m: PortForwardMapping): PortForwardMapping {
  if (typeof m !== 'object' || m === null) throw new InvalidArgumentError('each port mapping must be an object');
  const mapping: PortForwardMapping = { proto: checkProto(m.proto), hostIp: address(m.hostIp, 'host IP'), hostPort: checkPort(m.hostPort, 'host port'), containerPort: checkPort(m.containerPort, 'container port') };
  if (m.hostPortEnd === undefined || m.hostPortEnd === m.hostPort) return mapping;
  const end = checkPort(m.hostPortEnd, 'last host port');
  if (end < mapping.hostPort) throw new InvalidArgumentError(`host port range ${mapping.hostPort}-${end} ends before it starts`);
  checkPort(mapping.containerPort + end - mapping.hostPort, 'last container port');
  return { ...mapping, hostPortEnd: end };
}

/** Refuses two mappings of one family whose host ports intersect on the same protocol and host address. */
function checkOverlaps(mappings: readonly PortForwardMapping[]): void {
  const sorted = [...mappings].sort((a, b) => a.proto.localeCompare(b.proto) || a.hostIp.toString().localeCompare(b.hostIp.toString()) || a.hostPort - b.hostPort);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (a.proto === b.proto && a.hostIp.equals(b.hostIp) && b.hostPort <= (a.hostPortEnd ?? a.hostPort)) {
      throw new InvalidArgumentError(`host port ${b.hostPort}/${b.proto} on ${b.hostIp} is mapped twice`);
    }
  }
}

/**
 * Validates a spec. `families` are the families the firewall programs: mappings of another family are
 * dropped (and reported through `ignored`).
 */
export function normalizeForward(
  spec: PortForwardSpec,
  families: readonly Family[],
  ignored?: (m: PortForwardMapping) => void,
  marks: FirewallMarks = FirewallMarks.LEGACY,
): FirewallForward {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('port forward spec must be an object');
  if (typeof spec.endpointId !== 'string' || !/^[0-9a-f]{64}$/.test(spec.endpointId)) {
    throw new InvalidArgumentError(`invalid endpoint id ${JSON.stringify(spec.endpointId)}: expected 64 lower-case hex characters`);
  }
  const bridge = parseFirewallIfName(spec.bridge, 'bridge name');
  if (!Array.isArray(spec.ports)) throw new InvalidArgumentError('port forward needs a list of ports');
  const containers: Partial<Record<Family, IPAddress>> = {};
  for (const [family, value] of [[4, spec.containerV4], [6, spec.containerV6]] as const) {
    if (value === undefined) continue;
    const a = address(value, `container IPv${family} address`);
    if (a.family !== family) throw new InvalidArgumentError(`container IPv${family} address ${a} is not IPv${family}`);
    containers[family] = a;
  }
  const routed = spec.routed ?? [];
  if (!Array.isArray(routed)) throw new InvalidArgumentError('routed must be a list of families (4, 6)');
  routed.forEach((f) => parseFamily(f, 'routed family'));

  const byFamily: Record<Family, PortForwardMapping[]> = { 4: [], 6: [] };
  for (const m of spec.ports) {
    const mapping = normalizeMapping(m);
    if (!containers[mapping.hostIp.family]) throw new InvalidArgumentError(`host IP ${mapping.hostIp} needs a container IPv${mapping.hostIp.family} address`);
    if (families.includes(mapping.hostIp.family)) byFamily[mapping.hostIp.family].push(mapping);
    else ignored?.(mapping);
  }
  for (const f of [4, 6] as const) checkOverlaps(byFamily[f]);
  const id12 = spec.endpointId.slice(0, 12);
  const part = (f: Family): FamilyForward | undefined =>
    byFamily[f].length > 0 ? { container: containers[f]!, mappings: byFamily[f], routed: routed.includes(f) } : undefined;
  return {
    endpointId: spec.endpointId,
    id12,
    tag: marks.forwardTag(id12),
    chain: marks.forwardChain(id12),
    bucket: marks.bucketChain(id12),
    bucketTag: marks.bucketTag,
    bridge,
    v4: part(4),
    v6: part(6),
  };
}

export function forwardFamily(f: FirewallForward, family: Family): FamilyForward | undefined {
  return family === 4 ? f.v4 : f.v6;
}

/** A bucket chain in one table, and the jump from NETD into it (at the top in filter). */
export interface BucketLayout {
  readonly table: Table;
  readonly chain: string;
  readonly jump: PlacedRule;
}

/** What a forward adds in one family: its chains, their contents, the jumps into them, their buckets. */
export interface ForwardLayout {
  readonly chains: readonly { readonly table: Table; readonly chain: string }[];
  /** Rules inside the forward's own chains, per table, in order. */
  readonly contents: readonly { readonly table: Table; readonly rules: readonly Rule[] }[];
  /** The jumps from the buckets into them. */
  readonly jumps: readonly PlacedRule[];
  /** The buckets they need (shared with other endpoints). */
  readonly buckets: readonly BucketLayout[];
}

function bucketLayout(table: Table, chain: string, comment: string): BucketLayout {
  return {
    table,
    chain,
    jump: { rule: { table, chain: 'NETD', comment, target: { kind: 'jump', chain } }, top: table === 'filter' },
  };
}

/**
 * Where a mapping's packets go: the container's port; for a range, the container address alone (ports
 * kept) when host and container ports are equal, else the kernel's port offset from the first host port.
 */
function dnatTarget(container: IPAddress, m: PortForwardMapping): Target {
  const span = mappingSpan(m);
  if (span === 1) return { kind: 'dnat', address: container, port: m.containerPort };
  if (m.hostPort === m.containerPort) return { kind: 'dnat', address: container };
  return { kind: 'dnat', address: container, port: m.containerPort, portEnd: m.containerPort + span - 1, base: m.hostPort };
}

export function forwardLayout(f: FirewallForward, family: Family): ForwardLayout {
  const part = forwardFamily(f, family);
  if (!part) return { chains: [], contents: [], jumps: [], buckets: [] };
  const host = (ip: IPAddress) => (ip.isUnspecified ? {} : { dst: { cidr: Prefix.host(ip) } });
  const dnat: Rule[] = part.mappings.map((m) => ({
    table: 'nat',
    chain: f.chain,
    ...host(m.hostIp),
    proto: { name: m.proto, dport: m.hostPort, ...(m.hostPortEnd !== undefined ? { dportEnd: m.hostPortEnd } : {}) },
    comment: f.tag,
    target: dnatTarget(part.container, m),
  }));
  const chains: { table: Table; chain: string }[] = [{ table: 'nat', chain: f.chain }];
  const contents: { table: Table; rules: Rule[] }[] = [{ table: 'nat', rules: dnat }];
  const jumps: PlacedRule[] = [{ rule: { table: 'nat', chain: f.bucket, comment: f.tag, target: { kind: 'jump', chain: f.chain } } }];
  const buckets: BucketLayout[] = [bucketLayout('nat', f.bucket, f.bucketTag)];
  if (part.routed) {
    // One ACCEPT per distinct container port (two host ports may lead to the same one).
    const seen = new Set<string>();
    const accepts: Rule[] = [];
    for (const m of part.mappings) {
      const containerEnd = m.containerPort + mappingSpan(m) - 1;
      const k = `${m.proto}/${m.containerPort}/${containerEnd}`;
      if (seen.has(k)) continue;
      seen.add(k);
      accepts.push({
        table: 'filter',
        chain: f.chain,
        dst: { cidr: Prefix.host(part.container) },
        in: { name: f.bridge, negate: true },
        out: { name: f.bridge },
        proto: { name: m.proto, dport: m.containerPort, ...(containerEnd > m.containerPort ? { dportEnd: containerEnd } : {}) },
        comment: f.tag,
        target: { kind: 'verdict', verdict: 'ACCEPT' },
      });
    }
    chains.push({ table: 'filter', chain: f.chain });
    contents.push({ table: 'filter', rules: accepts });
    // The bucket's jump sits at the top of NETD, ahead of the per-network DROPs.
    jumps.push({ rule: { table: 'filter', chain: f.bucket, comment: f.tag, target: { kind: 'jump', chain: f.chain } } });
    buckets.push(bucketLayout('filter', f.bucket, f.bucketTag));
  }
  return { chains, contents, jumps, buckets };
}

/** Whether two normalised forwards program exactly the same rules. */
export function sameForward(a: FirewallForward, b: FirewallForward): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
