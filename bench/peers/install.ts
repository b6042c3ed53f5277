/**
 * `--install-peers`: installs, with apt-get, the Debian packages of the selected peers that are missing.
 * The bench installs nothing otherwise (a missing peer is reported n/a). All are Debian 12 packages.
 */
import { existsSync } from 'node:fs';
import { run } from '../env.js';
import type { ImplId, Item } from '../phase.js';
import { cniPluginDir } from './cni.js';
import { netavarkBinary } from './netavark.js';
import { which } from './docker.js';
import { dnsMissing } from '../dns-item.js';
import { etcdMissing } from '../../test/helpers/etcd.js';

/** Each peer's packages and whether it is there already. */
function wanted(impls: ImplId[], items: Item[]): string[] {
  const pkgs: string[] = [];
  if (impls.includes('cni') && !cniPluginDir()) pkgs.push('containernetworking-plugins');
  if (impls.includes('netavark') && !netavarkBinary()) pkgs.push('netavark');
  if ((impls.includes('docker') || impls.includes('docker-netd')) && !which('dockerd')) pkgs.push('docker.io');
  if (items.includes('throughput') && !which('iperf3')) pkgs.push('iperf3');
  if (items.includes('dns') && dnsMissing()) pkgs.push('dnsperf', 'aardvark-dns', 'dnsmasq');
  if (items.includes('overlay') && etcdMissing()) pkgs.push('etcd-server');
  if (items.includes('overlay') && !which('iperf3') && !pkgs.includes('iperf3')) pkgs.push('iperf3');
  if (!existsSync('/usr/sbin/nft')) pkgs.push('nftables');
  return pkgs;
}

export async function installPeers(impls: ImplId[], items: Item[], log: (m: string) => void): Promise<void> {
  const pkgs = wanted(impls, items);
  if (pkgs.length === 0) {
    log('--install-peers: every selected peer is installed');
    return;
  }
  log(`--install-peers: apt-get install ${pkgs.join(' ')}`);
  let r = await run(['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs], { allowFail: true, timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.code !== 0) {
    // An old package list: update once and try again.
    await run(['apt-get', 'update'], { allowFail: true, timeoutMs: 300_000 });
    r = await run(['apt-get', 'install', '-y', '--no-install-recommends', ...pkgs], { allowFail: true, timeoutMs: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (r.code !== 0) log(`--install-peers: apt-get failed (the peers stay n/a): ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 200)}`);
}
