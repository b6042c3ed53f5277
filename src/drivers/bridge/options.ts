/**
 * Options of the bridge driver, with Docker's option keys, parsed and validated before anything is
 * created.
 */
import { InvalidArgumentError } from '../../errors.js';
import { IPAddress, isFirewallSafeIfName, parseIfName, type Family, type IfName } from '../../net/index.js';

export const OPT_BRIDGE_NAME = 'com.docker.network.bridge.name';
export const OPT_MTU = 'com.docker.network.driver.mtu';
export const OPT_ICC = 'com.docker.network.bridge.enable_icc';
export const OPT_MASQUERADE = 'com.docker.network.bridge.enable_ip_masquerade';
export const OPT_HOST_BINDING_IPV4 = 'com.docker.network.bridge.host_binding_ipv4';
export const OPT_DEFAULT_BRIDGE = 'com.docker.network.bridge.default_bridge';
/** "nat" (default) or "routed": in routed mode published container ports are also reachable directly. */
export const OPT_GATEWAY_MODE_IPV4 = 'com.docker.network.bridge.gateway_mode_ipv4';
export const OPT_GATEWAY_MODE_IPV6 = 'com.docker.network.bridge.gateway_mode_ipv6';

const KNOWN = new Set([OPT_BRIDGE_NAME, OPT_MTU, OPT_ICC, OPT_MASQUERADE, OPT_HOST_BINDING_IPV4, OPT_DEFAULT_BRIDGE, OPT_GATEWAY_MODE_IPV4, OPT_GATEWAY_MODE_IPV6]);
const GATEWAY_MODES = ['nat', 'routed'];

export interface BridgeOptions {
  bridgeName: IfName;
  mtu?: number;
  icc: boolean;
  masquerade: boolean;
  /** Default host address of published ports (host_binding_ipv4); undefined: every address. */
  hostBindingIp?: string;
  /** Families in routed gateway mode. */
  routed: Family[];
}

function parseBool(key: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (/^(true|1)$/i.test(value)) return true;
  if (/^(false|0)$/i.test(value)) return false;
  throw new InvalidArgumentError(`option ${key} must be true or false, not ${JSON.stringify(value)}`);
}

export function parseBridgeOptions(networkId: string, options: Record<string, string>): BridgeOptions {
  for (const key of Object.keys(options)) {
    // Docker's generic com.docker.network.* keys of other drivers are refused rather than ignored.
    if (key.startsWith('com.docker.network.') && !KNOWN.has(key)) throw new InvalidArgumentError(`unknown bridge driver option ${key}`);
  }
  const bridgeName = options[OPT_BRIDGE_NAME] ?? `br-${networkId.slice(0, 12)}`;
  // Stricter than the kernel (which allows e.g. ';' or '+'): the name also reaches iptables, where '+'
  // is a wildcard, so only a plain charset is accepted, before anything is created.
  if (!isFirewallSafeIfName(bridgeName) || !/^[A-Za-z0-9]/.test(bridgeName)) {
    throw new InvalidArgumentError(`invalid bridge name ${JSON.stringify(bridgeName)}: use 1-15 characters of [A-Za-z0-9_.-], starting with a letter or digit`);
  }
  let mtu: number | undefined;
  if (options[OPT_MTU] !== undefined) {
    const text = options[OPT_MTU];
    mtu = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
    if (!(mtu >= 68 && mtu <= 65535)) throw new InvalidArgumentError(`option ${OPT_MTU} must be a number from 68 to 65535, not ${JSON.stringify(text)}`);
  }
  let hostBindingIp: string | undefined;
  const binding = options[OPT_HOST_BINDING_IPV4];
  if (binding !== undefined && binding !== '') {
    try {
      hostBindingIp = IPAddress.parse(binding).toString();
    } catch {
      throw new InvalidArgumentError(`option ${OPT_HOST_BINDING_IPV4} must be an IP address, not ${JSON.stringify(binding)}`);
    }
  }
  const routed: Family[] = [];
  for (const [key, family] of [[OPT_GATEWAY_MODE_IPV4, 4], [OPT_GATEWAY_MODE_IPV6, 6]] as const) {
    const mode = options[key];
    if (mode === undefined) continue;
    if (!GATEWAY_MODES.includes(mode)) throw new InvalidArgumentError(`option ${key} must be one of ${GATEWAY_MODES.join(', ')}, not ${JSON.stringify(mode)}`);
    if (mode === 'routed') routed.push(family);
  }
  return {
    bridgeName: parseIfName(bridgeName),
    mtu,
    icc: parseBool(OPT_ICC, options[OPT_ICC], true),
    masquerade: parseBool(OPT_MASQUERADE, options[OPT_MASQUERADE], true),
    hostBindingIp,
    routed,
  };
}
