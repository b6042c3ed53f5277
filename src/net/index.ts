/**
 * netd's network value types: one strict parser and one canonical formatter per concept.
 */
export { bitsOf, describeValue, parseFamily, type Family } from './family.js';
export { IPAddress } from './ip-address.js';
export { Prefix, type PrefixParseOptions } from './prefix.js';
export { InterfaceAddress } from './interface-address.js';
export { MAC } from './mac.js';
export { isFirewallSafeIfName, parseFirewallIfName, parseIfName, type IfName } from './ifname.js';
export { MAX_PORT, PortRange, checkPort, parsePort, type Port } from './port.js';
export { PROTOS, PROTO_NUMBER, checkProto, parseProto, protoProblem, type Proto } from './proto.js';
