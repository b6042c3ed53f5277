/**
 * netd's network value types: one strict parser and one canonical formatter per concept.
 */
export { FAMILIES, bitsOf, bytesOf, describeValue, parseFamily, type Family } from './family.js';
export { IPAddress } from './ip-address.js';
export { Prefix, type PrefixParseOptions } from './prefix.js';
export { InterfaceAddress } from './interface-address.js';
export { MAC } from './mac.js';
export { IFNAME_MAX_BYTES, isFirewallSafeIfName, parseFirewallIfName, parseIfName, type IfName } from './ifname.js';
export { MAX_PORT, MIN_PORT, PortRange, checkPort, isPort, parsePort, portTextProblem, type Port } from './port.js';
export { PROTOS, PROTO_NUMBER, checkProto, isProto, parseProto, protoProblem, type Proto } from './proto.js';
