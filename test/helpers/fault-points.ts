/** The fault points (see src/cnm/fault.ts) of the four operations, as the crash and soak tests use them. */
export const FAULT_POINTS: Record<string, string[]> = {
  'create-network': ['before:journal', 'after:journal', 'after:create bridge', 'after:add gateway address IPv4', 'after:bring the bridge up', 'after:set up firewall rules', 'after:driver create network', 'after:persist network'],
  attach: ['before:journal', 'after:allocate IPv4 address', 'after:journal', 'after:create veth', 'after:driver join', 'after:persist endpoint'],
  detach: ['before:journal', 'after:journal', 'after:driver leave', 'after:delete record'],
  'rm-network': ['before:journal', 'after:journal', 'after:firewall teardown', 'after:driver delete network', 'after:delete record'],
};
