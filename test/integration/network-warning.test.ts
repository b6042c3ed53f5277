/**
 * An explicit subnet that overlaps an address or route of the host is allowed, and said: in the Docker
 * API create response's `Warning`, in the daemon's log, and on the netd CLI's stderr (which still exits 0
 * and prints the id). A subnet clear of the host gets no warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestDaemon, Topology } from '../helpers/daemon.js';

test('a --subnet overlapping a host address/route: created, with a Warning in the API, the log and the CLI', async () => {
  // The topology gives the daemon's host namespace 198.51.100.1/24 on ext0 (address and route).
  const topo = await Topology.create('warn');
  const daemon = await TestDaemon.start(topo.host);
  try {
    const cli = await daemon.cli(['create-network', 'over', '--subnet', '198.51.100.64/26'], true);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^[0-9a-f]{64}\n$/);
    assert.match(cli.stderr, /^netd: warning: subnet 198\.51\.100\.64\/26 overlaps 198\.51\.100\.0\/24, which this host already uses .*\n$/);

    const api = await daemon.client.call<{ Id: string; Warning: string }>('POST', '/networks/create', { Name: 'over2', IPAM: { Config: [{ Subnet: '198.51.100.128/26' }] } });
    assert.match(api.Id, /^[0-9a-f]{64}$/);
    assert.match(api.Warning, /^subnet 198\.51\.100\.128\/26 overlaps 198\.51\.100\.0\/24/);
    assert.ok(daemon.logs.includes('subnet 198.51.100.128/26 overlaps 198.51.100.0/24'), 'the warning is logged');

    const clear = await daemon.client.call<{ Id: string; Warning: string }>('POST', '/networks/create', { Name: 'clear', IPAM: { Config: [{ Subnet: '203.0.113.0/24' }] } });
    assert.equal(clear.Warning, '');
    const quiet = await daemon.cli(['create-network', 'clear2', '--subnet', '192.0.2.0/24'], true);
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stderr, '');
    await daemon.cli(['rm-network', 'over', 'over2', 'clear', 'clear2']);
  } finally {
    await daemon.destroy();
    await topo.destroy();
  }
});
