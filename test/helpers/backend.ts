/**
 * The firewall backend the suite runs on: NETD_TEST_FIREWALL_BACKEND (iptables or nftables; the CI runs the
 * integration suite once with each), else the daemon's default.
 */
export function testFirewallBackend(): 'iptables' | 'nftables' {
  const b = process.env.NETD_TEST_FIREWALL_BACKEND;
  if (b === undefined || b === '') return 'iptables';
  if (b !== 'iptables' && b !== 'nftables') throw new Error(`NETD_TEST_FIREWALL_BACKEND=${b}: expected iptables or nftables`);
  return b;
}

/** The daemon arguments that select the suite's firewall backend. */
export function firewallBackendArgs(): string[] {
  return ['--firewall-backend', testFirewallBackend()];
}

