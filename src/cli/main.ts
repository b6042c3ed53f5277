#!/usr/bin/env node
/**
 * The netd command line: `netd daemon` runs the daemon; every other command is a thin client of its API.
 * Errors are one line on stderr and a non-zero exit.
 */
import { resolve as resolvePath } from 'node:path';
import { Command, Option } from 'commander';
import { Client } from './client.js';
import { clusterText, infoText, labelsText, table } from './format.js';
import type { DaemonInfo } from '../api/info-api.js';
import type { ClusterStatus } from '../cluster/cluster.js';
import { addOciHookCommand } from './oci-hook.js';
import { DEFAULTS, FIREWALL_BACKEND_NAMES } from '../daemon/defaults.js';
import { parsePublishSpec } from '../portmap/parse.js';
import { IPAddress, Prefix } from '../net/index.js';
import { familyOf, formatBinding, hostPortFor, toDockerPortBinding, type PortBinding } from '../portmap/types.js';

const VERSION = '0.1.0';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function keyValues(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`${what} ${JSON.stringify(item)} must be KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function client(cmd: Command): Client {
  return new Client(cmd.optsWithGlobals().host as string);
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

interface NetworkJson {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Containers: Record<string, unknown>;
}

export function buildProgram(): Command {
  const program = new Command('netd')
    .description('netd: container networking daemon and its command line')
    .version(VERSION)
    .addOption(new Option('-H, --host <address>', 'daemon socket (unix:///path or tcp://host:port)').env('NETD_HOST').default(DEFAULTS.host))
    .showHelpAfterError(false);

  program
    .command('daemon')
    .description('run the daemon')
    .option('--data-root <dir>', 'where state is kept', DEFAULTS.dataRoot)
    .option('--exec-root <dir>', 'runtime files (namespaces netd creates, containers\' resolv.conf and hosts)', DEFAULTS.execRoot)
    .option('--log-level <level>', 'trace, debug, info, warn, error', DEFAULTS.logLevel)
    .option('--bridge <name>', 'bridge of the default network', DEFAULTS.bridge)
    .option('--default-address-pool <base=CIDR,size=N>', 'default address pool (repeatable; replaces the built-in pools)', collect, [])
    .option('--group <gid>', 'group allowed to use the socket (numeric gid)')
    .option('--firewall-check-interval <ms>', 'how often to check that netd\'s firewall rules are still there, where nf_tables changes cannot be watched (0: never)', '3000')
    .option('--ip-forward-no-drop', 'when netd turns IP forwarding on, leave the FORWARD policy as it is (default: set it to DROP)')
    .option('--dns <address>', 'upstream DNS server for the embedded DNS: IP, IPv4:PORT or [IPv6]:PORT (repeatable; default: the host resolv.conf nameservers)', collect, [])
    .option('--files-root <dir>', 'let clients name files for netd to write (attach --resolv-conf/--hosts) under this directory only (default: nowhere)')
    .addOption(new Option('--firewall-backend <name>', 'how netd programs the kernel firewall').choices(FIREWALL_BACKEND_NAMES).default(FIREWALL_BACKEND_NAMES[0]))
    .option('--docker-plugin <address>', 'also serve dockerd as a remote network and IPAM plugin on this unix socket (unix:///run/docker/plugins/netd.sock or a path; off by default)')
    .option('--cluster-store <url>', 'join a cluster whose shared state is in etcd: etcd://HOST:PORT[,HOST:PORT...] (overlay networks; off by default)')
    .option('--cluster-store-cacert <file>', 'CA certificate of the etcd servers (TLS)')
    .option('--cluster-store-cert <file>', 'client certificate for etcd (TLS)')
    .option('--cluster-store-key <file>', 'client key for etcd (TLS)')
    .option('--advertise-address <ip>', 'this host\'s address on the network between the hosts, where their VXLAN traffic arrives (with --cluster-store)')
    .option('--cluster-lease-ttl <seconds>', 'how long this host\'s records outlive it in etcd', '10')
    .option('--cluster-block-grace <seconds>', 'how long a dead host\'s address blocks stay its own before other hosts may take them (and a host cut off from etcd still uses its own)', '600')
    .action(async (opts, cmd: Command) => {
      // Required here, not imported above: only this command loads the daemon (and the native addon).
      const { runDaemon } = require('./daemon-command.js') as typeof import('./daemon-command.js');
      await runDaemon({
        host: cmd.optsWithGlobals().host,
        dataRoot: opts.dataRoot,
        execRoot: opts.execRoot,
        logLevel: opts.logLevel,
        bridge: opts.bridge,
        defaultAddressPools: opts.defaultAddressPool,
        group: opts.group === undefined ? undefined : Number(opts.group),
        firewallCheckIntervalMs: Number(opts.firewallCheckInterval),
        dns: opts.dns,
        filesRoot: opts.filesRoot === undefined ? undefined : resolvePath(opts.filesRoot),
        ipForwardNoDrop: opts.ipForwardNoDrop === true,
        dockerPlugin: opts.dockerPlugin,
        firewallBackend: opts.firewallBackend,
        clusterStore: opts.clusterStore,
        clusterStoreCacert: opts.clusterStoreCacert,
        clusterStoreCert: opts.clusterStoreCert,
        clusterStoreKey: opts.clusterStoreKey,
        advertiseAddress: opts.advertiseAddress,
        clusterLeaseTtl: Number(opts.clusterLeaseTtl),
        clusterBlockGrace: Number(opts.clusterBlockGrace),
      });
    });

  program
    .command('create-network <name>')
    .description('create a network; prints its id')
    .option('-d, --driver <driver>', 'network driver', 'bridge')
    .option('--subnet <cidr>', 'subnet, IPv4 or IPv6 (repeatable: one of each)', collect, [])
    .option('--gateway <ip>', 'gateway for the subnet of the same family (repeatable)', collect, [])
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the IPv4 subnet')
    .option('--ipv6', 'enable IPv6')
    .option('--internal', 'no access to the outside')
    .option('--attachable', 'mark the network attachable')
    .option('-o, --opt <key=value>', 'driver option (repeatable)', collect, [])
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, opts, cmd: Command) => {
      const config: { Subnet: string; Gateway?: string; IPRange?: string }[] = [];
      const gateways: string[] = opts.gateway;
      for (const subnet of opts.subnet as string[]) {
        const family = Prefix.parse(subnet, 'subnet').family;
        config.push({ Subnet: subnet, Gateway: gateways.find((g) => IPAddress.parse(g, 'gateway').family === family), IPRange: family === 6 ? undefined : opts.ipRange });
      }
      if (config.length === 0 && (opts.ipRange || gateways.length > 0)) throw new Error('--ip-range and --gateway need --subnet');
      const res = await client(cmd).call<{ Id: string; Warning?: string }>('POST', '/networks/create', {
        Name: name,
        Driver: opts.driver,
        IPAM: { Driver: 'default', Config: config },
        EnableIPv6: Boolean(opts.ipv6),
        Internal: Boolean(opts.internal),
        Attachable: Boolean(opts.attachable),
        Options: keyValues(opts.opt, 'option'),
        Labels: keyValues(opts.label, 'label'),
      });
      if (res.Warning) process.stderr.write(`netd: warning: ${res.Warning}\n`);
      process.stdout.write(res.Id + '\n');
    });

  program
    .command('attach <container>')
    .description('attach a container (PID, network namespace path, or sandbox name) to a network; prints the result as JSON')
    .option('-n, --network <network>', 'network to attach to (default: bridge)')
    .option('--mode <mode>', 'bridge (default), host, none, or container:<name|id|pid> to share another container\'s namespace')
    .option('--name <name>', 'container name')
    .option('--ip <address>', 'IPv4 address')
    .option('--ip6 <address>', 'IPv6 address')
    .option('--mac <address>', 'MAC address')
    .option('--alias <name>', 'network-scoped alias (repeatable)', collect, [])
    .option('-p, --publish <[host-ip:][host-port[-end]:]port[-end][/proto]>', 'publish container ports on the host (repeatable); no host port: a free one', collect, [])
    .option('--resolv-conf <path>', 'also write the container\'s resolv.conf to this file (only under the daemon\'s --files-root)')
    .option('--hosts <path>', 'also write the container\'s hosts file to this file (only under the daemon\'s --files-root)')
    .option('--link <name[:alias]>', 'hosts entry for another container on the network (repeatable)', collect, [])
    .action(async (container: string, opts, cmd: Command) => {
      const target = /^\d+$/.test(container) ? { pid: Number(container) } : container.startsWith('/') ? { path: container } : { sandbox: container };
      const absolute = (p: string | undefined) => (p === undefined ? undefined : resolvePath(p));
      const links = opts.link as string[];
      const extras = opts.resolvConf || opts.hosts || links.length > 0 ? { resolvConf: absolute(opts.resolvConf), hosts: absolute(opts.hosts), links: links.length > 0 ? links : undefined } : undefined;
      const result = await client(cmd).call<{ network: string; files?: { problems?: string[] } }>('POST', '/netd/v1/attach', {
        target,
        network: opts.network,
        name: opts.name,
        ip: opts.ip,
        ip6: opts.ip6,
        mac: opts.mac,
        aliases: opts.alias,
        mode: opts.mode,
        // Sent in libnetwork's portmap shape; an error in a spec stops here, before the daemon is asked.
        ports: (opts.publish as string[]).length > 0 ? (opts.publish as string[]).flatMap(parsePublishSpec).map(toDockerPortBinding) : undefined,
        extras,
      });
      print(result);
      // The container is attached either way; a file the runtime asked for and did not get is still a failure.
      const problems = result.files?.problems ?? [];
      if (problems.length > 0) throw new Error(`attached to ${result.network}, but ${problems.join('; ')}`);
    });

  program
    .command('port <container> [port]')
    .description("list a container's published ports (80/tcp -> 0.0.0.0:8080), or the host addresses of one port (80 or 80/udp)")
    .action(async (container: string, port: string | undefined, _opts, cmd: Command) => {
      const list = await client(cmd).call<PortBinding[]>('GET', `/netd/v1/containers/${encodeURIComponent(container)}/ports`);
      list.sort((a, b) => a.containerPort - b.containerPort || a.proto.localeCompare(b.proto) || familyOf(a.hostIp) - familyOf(b.hostIp) || a.hostPort - b.hostPort);
      if (port === undefined) return void process.stdout.write(list.map((b) => formatBinding(b) + '\n').join(''));
      const [number, proto = 'tcp'] = port.split('/');
      // A range binding holds the port if it lies in its container range: print that port's own host port.
      const matching = list.flatMap((b) => {
        const hostPort = b.proto === proto.toLowerCase() ? hostPortFor(b, Number(number)) : undefined;
        return hostPort === undefined ? [] : [formatBinding({ ...b, hostPort, hostPortEnd: undefined }).split(' -> ')[1]];
      });
      if (matching.length === 0) throw new Error(`no public port ${number}/${proto} published for ${container}`);
      process.stdout.write(matching.map((hostAddress) => hostAddress + '\n').join(''));
    });

  program
    .command('detach <container>')
    .description('detach a container (PID, name or id) from one network, or from all')
    .option('-n, --network <network>', 'only from this network')
    .action(async (container: string, opts, cmd: Command) => {
      const res = await client(cmd).call<{ removed: string[] }>('POST', '/netd/v1/detach', { container, network: opts.network });
      for (const id of res.removed) process.stdout.write(id + '\n');
    });

  program
    .command('connect <network> <container>')
    .description('connect a container (name, id, PID or namespace path) to a network')
    .option('--ip <address>', 'IPv4 address')
    .option('--ip6 <address>', 'IPv6 address')
    .option('--alias <name>', 'network-scoped alias (repeatable)', collect, [])
    .action(async (network: string, container: string, opts, cmd: Command) => {
      await client(cmd).call('POST', `/networks/${encodeURIComponent(network)}/connect`, {
        Container: container,
        EndpointConfig: { IPAMConfig: { IPv4Address: opts.ip, IPv6Address: opts.ip6 }, Aliases: opts.alias },
      });
    });

  program
    .command('disconnect <network> <container>')
    .description('disconnect a container from a network')
    .action(async (network: string, container: string, _opts, cmd: Command) => {
      await client(cmd).call('POST', `/networks/${encodeURIComponent(network)}/disconnect`, { Container: container });
    });

  const sandbox = program.command('sandbox').description('network namespaces netd creates and keeps (for runtimes that want them)');
  sandbox
    .command('create <name>')
    .description('create a persistent network namespace; prints its path')
    .action(async (name: string, _opts, cmd: Command) => {
      const sb = await client(cmd).call<{ key: string }>('POST', '/netd/v1/sandboxes', { name });
      process.stdout.write(sb.key + '\n');
    });
  sandbox
    .command('rm <name>')
    .description('detach everything from a sandbox and remove its namespace')
    .action(async (name: string, _opts, cmd: Command) => {
      await client(cmd).call('DELETE', `/netd/v1/sandboxes/${encodeURIComponent(name)}`);
    });
  sandbox
    .command('ls')
    .description('list sandboxes (containers\' namespaces)')
    .option('--format <format>', 'table or json', 'table')
    .action(async (opts, cmd: Command) => {
      const list = await client(cmd).call<{ id: string; name: string; key: string; endpoints: string[]; persistent?: boolean; members?: { name: string }[] }[]>('GET', '/netd/v1/sandboxes');
      if (opts.format === 'json') return print(list);
      const rows = list.map((s) => [s.id.slice(0, 12), s.name, s.key, String(s.endpoints.length), s.persistent ? 'yes' : 'no', (s.members ?? []).map((m) => m.name).join(',') || '-']);
      process.stdout.write(table(['SANDBOX ID', 'NAME', 'NAMESPACE', 'ENDPOINTS', 'NETD-MADE', 'SHARED BY'], rows) + '\n');
    });

  program
    .command('networks')
    .alias('ls')
    .description('list networks')
    .option('--format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'only ids')
    .action(async (opts, cmd: Command) => {
      const list = await client(cmd).call<NetworkJson[]>('GET', '/networks');
      list.sort((a, b) => a.Name.localeCompare(b.Name));
      if (opts.format === 'json') return print(list);
      if (opts.quiet) return void process.stdout.write(list.map((n) => n.Id.slice(0, 12) + '\n').join(''));
      const rows = list.map((n) => [n.Id.slice(0, 12), n.Name, n.Driver, n.Scope, n.IPAM.Config.map((c) => c.Subnet).join(',') || '-', String(Object.keys(n.Containers).length)]);
      process.stdout.write(table(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET', 'CONTAINERS'], rows) + '\n');
    });

  program
    .command('inspect <network...>')
    .description('show networks as JSON')
    .action(async (networks: string[], _opts, cmd: Command) => {
      const c = client(cmd);
      print(await Promise.all(networks.map((n) => c.call('GET', `/networks/${encodeURIComponent(n)}`))));
    });

  program
    .command('rm-network <network...>')
    .alias('rm')
    .description('remove networks (refused while containers are attached)')
    .action(async (networks: string[], _opts, cmd: Command) => {
      const c = client(cmd);
      for (const n of networks) {
        await c.call('DELETE', `/networks/${encodeURIComponent(n)}`);
        process.stdout.write(n + '\n');
      }
    });

  program
    .command('prune')
    .description('remove every network without containers (not the predefined ones)')
    .action(async (_opts, cmd: Command) => {
      const res = await client(cmd).call<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune');
      for (const n of res.NetworksDeleted ?? []) process.stdout.write(n + '\n');
    });

  program
    .command('firewall-reload')
    .description('re-apply netd\'s firewall rules now (after a firewall flush or reload)')
    .action(async (_opts, cmd: Command) => {
      await client(cmd).call('POST', '/netd/v1/firewall/reload');
    });

  program
    .command('info')
    .description('the daemon\'s instance, firewall backend, and what in the host\'s firewall drops netd\'s traffic (with the rule to add)')
    .option('--format <format>', 'text or json', 'text')
    .action(async (opts, cmd: Command) => {
      const info = await client(cmd).call<DaemonInfo>('GET', '/netd/v1/info');
      if (opts.format === 'json') return print(info);
      process.stdout.write(infoText(info) + '\n');
    });

  program
    .command('cluster')
    .description('the hosts of the cluster: their addresses, whether they are alive, their endpoints per network')
    .option('--format <format>', 'table or json', 'table')
    .action(async (opts, cmd: Command) => {
      const status = await client(cmd).call<ClusterStatus>('GET', '/netd/v1/cluster');
      if (opts.format === 'json') return print(status);
      process.stdout.write(clusterText(status) + '\n');
    });

  program
    .command('endpoints')
    .description('list endpoints')
    .option('--format <format>', 'table or json', 'table')
    .action(async (opts, cmd: Command) => {
      const list = await client(cmd).call<{ id: string; name: string; network: string; ifname: string; ipv4?: string; ipv6?: string; mac?: string; labels?: Record<string, string>; driverState: { hostIfname?: string } }[]>('GET', '/netd/v1/endpoints');
      if (opts.format === 'json') return print(list);
      const rows = list.map((e) => [e.id.slice(0, 12), e.name, e.network, e.ifname || '-', e.driverState.hostIfname ?? '-', e.mac ?? '-', [e.ipv4, e.ipv6].filter(Boolean).join(',') || '-', labelsText(e.labels)]);
      process.stdout.write(table(['ENDPOINT ID', 'CONTAINER', 'NETWORK', 'IFACE', 'HOST IFACE', 'MAC', 'ADDRESSES', 'LABELS'], rows) + '\n');
    });

  addOciHookCommand(program);

  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: Error) => {
      process.stderr.write(`netd: ${err.message}\n`);
      process.exit(1);
    });
}
