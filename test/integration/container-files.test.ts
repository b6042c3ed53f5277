/**
 * Files netd writes for containers: each sandbox's resolv.conf and hosts in netd's own directory
 * (`<exec-root>/containers/<sandbox-id>/`), returned by attach, kept current, removed with the sandbox;
 * files a client names only under the administrator's --files-root, never through a symlink out of it;
 * a bad --link or extra refused before anything is attached.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { TestContainer, TestNetns, requireRoot } from '../helpers/netns.js';
import { TestDaemon, kernelSnapshot } from '../helpers/daemon.js';
import { ApiError } from '../../src/cli/client.js';

interface AttachJson {
  sandboxId: string;
  ipv4: string;
  resolvConfPath?: string;
  hostsPath?: string;
  files?: { resolvConf?: string; hosts?: string; problems?: string[] };
}

const ip = (cidr: string) => cidr.split('/')[0];
const PRECIOUS = 'precious: must never be written by netd\n';

describe('container files', () => {
  let ns: TestNetns;
  let daemon: TestDaemon;
  let allowed: string;
  let outside: string;
  const containers: TestContainer[] = [];

  /** A new container, stopped after the suite. */
  const container = async () => containers[containers.push(await TestContainer.start()) - 1];
  const attach = async (c: TestContainer, args: string[]) => JSON.parse((await daemon.cli(['attach', String(c.pid), ...args])).stdout) as AttachJson;

  const lines = (path: string) => readFileSync(path, 'utf8').split('\n');
  const containersDir = () => join(daemon.dir, 'run', 'containers');

  /** What an attach must not change when it is refused: the kernel, and netd's records. */
  async function state(): Promise<unknown> {
    return {
      kernel: await kernelSnapshot(ns),
      endpoints: await daemon.client.call('GET', '/netd/v1/endpoints'),
      sandboxes: await daemon.client.call('GET', '/netd/v1/sandboxes'),
    };
  }

  /** An attach through the API that must be refused with 400, leaving everything as it was. */
  async function refused(c: TestContainer, extras: unknown, why: RegExp): Promise<void> {
    const before = await state();
    await assert.rejects(
      daemon.client.call('POST', '/netd/v1/attach', { target: c.pid, network: 'filesa', name: `r${randomBytes(3).toString('hex')}`, extras }),
      (err: unknown) => err instanceof ApiError && err.status === 400 && why.test(err.message),
      `refused with 400 matching ${why}: ${JSON.stringify(extras)}`,
    );
    assert.deepEqual(await state(), before, `nothing changed: ${JSON.stringify(extras)}`);
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo'], 'the container got no interface');
  }

  before(async () => {
    requireRoot();
    allowed = mkdtempSync(join(tmpdir(), 'netd-files-root-'));
    outside = mkdtempSync(join(tmpdir(), 'netd-files-outside-'));
    mkdirSync(join(outside, 'etc'));
    writeFileSync(join(outside, 'etc', 'hosts'), PRECIOUS);
    ns = await TestNetns.create('files');
    daemon = await TestDaemon.start(ns, ['--files-root', allowed]);
    await daemon.cli(['create-network', 'filesa', '--subnet', '192.0.2.0/24']);
    await daemon.cli(['create-network', 'filesb', '--subnet', '203.0.113.0/24']);
  });

  after(async () => {
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await ns?.destroy();
    for (const d of [allowed, outside]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test('every attach gets resolv.conf and hosts in its own directory, kept current, removed with the sandbox', async () => {
    const a = await container();
    const ra = await attach(a, ['--network', 'filesa', '--name', 'alpha']);
    const dirA = join(containersDir(), ra.sandboxId);
    assert.equal(ra.resolvConfPath, join(dirA, 'resolv.conf'));
    assert.equal(ra.hostsPath, join(dirA, 'hosts'));
    assert.ok(lines(ra.resolvConfPath!).includes('nameserver 192.0.2.1'), 'the network\'s DNS');
    assert.match(readFileSync(ra.resolvConfPath!, 'utf8'), /^options (.* )?ndots:0$/m);
    assert.ok(lines(ra.hostsPath!).includes('127.0.0.1\tlocalhost'));
    assert.ok(lines(ra.hostsPath!).includes(`${ip(ra.ipv4)}\talpha`), 'its own name');

    // A linked container's entry, and the linker's file follows the name.
    const b = await container();
    const rb = await attach(b, ['--network', 'filesa', '--name', 'beta', '--link', 'alpha:db']);
    assert.ok(lines(rb.hostsPath!).includes(`${ip(ra.ipv4)}\tdb alpha`), 'link with alias');

    // A second network: same files, the new address added.
    const ra2 = await attach(a, ['--network', 'filesb']);
    assert.equal(ra2.hostsPath, ra.hostsPath);
    assert.ok(lines(ra.hostsPath!).includes(`${ip(ra2.ipv4)}\talpha`), 'the address on the second network');
    assert.ok(lines(ra.hostsPath!).includes(`${ip(ra.ipv4)}\talpha`));

    // Leaving one network: the files stay, without that address.
    await daemon.cli(['detach', 'alpha', '--network', 'filesb']);
    assert.ok(!lines(ra.hostsPath!).includes(`${ip(ra2.ipv4)}\talpha`));
    assert.ok(existsSync(ra.resolvConfPath!));

    // The last endpoint gone: the directory goes; the linker's entry goes with the container.
    await daemon.cli(['detach', 'alpha']);
    assert.ok(!existsSync(dirA), 'the sandbox directory is removed');
    assert.ok(!lines(rb.hostsPath!).some((l) => /\talpha$|\tdb alpha$/.test(l)), 'no stale link entry');

    // Another container joins with the linked name: the linker's hosts file points at it.
    const a2 = await container();
    await attach(a2, ['--network', 'filesa', '--name', 'alpha', '--ip', '192.0.2.50']);
    assert.ok(lines(rb.hostsPath!).includes('192.0.2.50\tdb alpha'), 'the link follows the name');

    await daemon.cli(['detach', 'beta']);
    assert.ok(!existsSync(join(containersDir(), rb.sandboxId)));
    await daemon.cli(['detach', 'alpha']);
  });

  test('a bind mount of the files (as a runtime makes) sees every rewrite', async () => {
    const c = await container();
    const r = await attach(c, ['--network', 'filesa', '--name', 'mounted']);
    const inode = statSync(r.hostsPath!).ino;
    // A mount namespace of its own, with the hosts and resolv.conf bind-mounted onto files there, as a
    // runtime does for a container; read through /proc/PID/root, i.e. as the container would.
    const targets = mkdtempSync(join(tmpdir(), 'netd-bind-'));
    const [hostsT, resolvT] = [join(targets, 'hosts'), join(targets, 'resolv.conf')];
    writeFileSync(hostsT, '');
    writeFileSync(resolvT, '');
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
      `mount --bind "$1" "$2" && mount --bind "$3" "$4" && echo ready && exec sleep infinity`, 'sh', r.hostsPath!, hostsT, r.resolvConfPath!, resolvT], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(holder.stdout!, 'data');
      const seen = (path: string) => readFileSync(`/proc/${holder.pid}/root${path}`, 'utf8').split('\n');
      assert.ok(seen(hostsT).includes(`${ip(r.ipv4)}\tmounted`), 'the mount shows the file');
      assert.ok(seen(resolvT).includes('nameserver 192.0.2.1'));
      // A second network: the hosts file gains an address; the container sees it through its mount.
      const r2 = await attach(c, ['--network', 'filesb']);
      assert.ok(lines(r.hostsPath!).includes(`${ip(r2.ipv4)}\tmounted`));
      assert.ok(seen(hostsT).includes(`${ip(r2.ipv4)}\tmounted`), 'the rewrite is seen through the bind mount');
      assert.equal(statSync(r.hostsPath!).ino, inode, 'rewritten in place, same inode');
      await daemon.cli(['detach', 'mounted', '--network', 'filesb']);
      assert.ok(!seen(hostsT).includes(`${ip(r2.ipv4)}\tmounted`), 'and the removal too');
      assert.ok(seen(hostsT).includes(`${ip(r.ipv4)}\tmounted`));
    } finally {
      holder.kill('SIGKILL');
      await once(holder, 'exit').catch(() => undefined);
      rmSync(targets, { recursive: true, force: true });
    }
    await daemon.cli(['detach', 'mounted']);
  });

  test('an attach whose own files could not be written says so and gives no paths', async () => {
    const sb = (await daemon.client.call('POST', '/netd/v1/sandboxes', { name: 'unwritable' })) as { id: string };
    // A file where the sandbox's directory must go: netd cannot create its files there.
    const blocker = join(containersDir(), sb.id);
    writeFileSync(blocker, 'in the way\n');
    try {
      const r = (await daemon.client.call('POST', '/netd/v1/attach', { target: { sandbox: 'unwritable' }, network: 'filesa' })) as AttachJson;
      assert.ok(r.ipv4, 'the attach itself is done');
      assert.equal(r.hostsPath, undefined, 'no path to a file that is not there');
      assert.equal(r.resolvConfPath, undefined);
      assert.ok(r.files?.problems?.some((p) => p.includes(blocker)), `problems reported: ${JSON.stringify(r.files)}`);
      // The CLI prints the result and fails in one line, as for a file the client named.
      await daemon.cli(['detach', 'unwritable']);
      writeFileSync(blocker, 'in the way\n');
      const res = await daemon.cli(['attach', 'unwritable', '--network', 'filesa'], true);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /^netd: attached to filesa, but could not write the files in /);
    } finally {
      rmSync(blocker, { recursive: true, force: true });
      await daemon.cli(['sandbox', 'rm', 'unwritable']);
    }
  });

  test('a path outside --files-root is refused with 400 and the file is untouched', async () => {
    const c = await container();
    const victim = join(outside, 'etc', 'hosts');
    const name = basename(outside);
    const hostile: [unknown, RegExp][] = [
      [{ hosts: victim }, /not under the files root/],
      [{ resolvConf: victim }, /not under the files root/],
      [{ hosts: `${allowed}/../${name}/etc/hosts` }, /spelled plainly/],
      [{ hosts: `${allowed}/./x` }, /spelled plainly/],
      [{ hosts: `${allowed}//x` }, /spelled plainly/],
      [{ hosts: `${allowed}/x/` }, /spelled plainly/],
      [{ hosts: 'relative/hosts' }, /not an absolute path/],
      [{ hosts: allowed }, /not under the files root/],
      [{ hosts: `${allowed}-sibling/hosts` }, /not under the files root/],
      [{ hosts: `${allowed}/a\nb` }, /control characters/],
      [{ hosts: `${allowed}/${'x'.repeat(300)}` }, /longer than 255/],
      [{ hosts: `${allowed}/missing-dir/hosts` }, /ENOENT/],
      [{ hosts: 42 }, /must be a path/],
      [{ links: 'alpha' }, /links must be a list/],
      [{ links: ['bad name!'] }, /invalid link/],
      [{ bogus: true }, /unknown attach extra "bogus"/],
    ];
    for (const [extras, why] of hostile) await refused(c, extras, why);
    assert.equal(readFileSync(victim, 'utf8'), PRECIOUS);

    // The CLI says so in one line, and the file stays as it was.
    const res = await daemon.cli(['attach', String(c.pid), '--network', 'filesa', '--hosts', victim], true);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^netd: hosts .* is not under the files root/);
    assert.equal(readFileSync(victim, 'utf8'), PRECIOUS);
  });

  test('a symlink below --files-root cannot lead a write out of it', async () => {
    const c = await container();
    const victim = join(outside, 'etc', 'hosts');
    symlinkSync(join(outside, 'etc'), join(allowed, 'escape'));
    symlinkSync(victim, join(allowed, 'hosts-link'));
    mkdirSync(join(allowed, 'sub'));
    symlinkSync(join(outside, 'etc'), join(allowed, 'sub', 'deeper'));
    await refused(c, { hosts: join(allowed, 'escape', 'hosts') }, /symlink or not a directory/);
    await refused(c, { resolvConf: join(allowed, 'sub', 'deeper', 'hosts') }, /symlink or not a directory/);
    await refused(c, { hosts: join(allowed, 'hosts-link') }, /is a symlink/);
    await refused(c, { hosts: join(allowed, 'sub') }, /not a regular file/);
    assert.equal(readFileSync(victim, 'utf8'), PRECIOUS);
    assert.ok(lstatSync(join(allowed, 'hosts-link')).isSymbolicLink(), 'the planted link is left alone');

    // Under the root, plainly: written, reported, and rewritten as the container's networks change.
    const hosts = join(allowed, 'sub', 'hosts');
    const resolvConf = join(allowed, 'sub', 'resolv.conf');
    const r = await attach(c, ['--network', 'filesa', '--name', 'gamma', '--hosts', hosts, '--resolv-conf', resolvConf]);
    assert.deepEqual(r.files, { resolvConf, hosts });
    assert.ok(lines(hosts).includes(`${ip(r.ipv4)}\tgamma`));
    assert.ok(lines(resolvConf).includes('nameserver 192.0.2.1'));
    const r2 = await attach(c, ['--network', 'filesb']);
    assert.ok(lines(hosts).includes(`${ip(r2.ipv4)}\tgamma`), 'kept current');
    assert.equal(readFileSync(victim, 'utf8'), PRECIOUS);
    await daemon.cli(['detach', 'gamma']);
  });

  test('a bad --link leaves the kernel and the records unchanged', async () => {
    const c = await container();
    const before = await state();
    const hosts = join(allowed, 'delta-hosts');
    const res = await daemon.cli(['attach', String(c.pid), '--network', 'filesa', '--name', 'delta', '--hosts', hosts, '--link', 'ghost'], true);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no container named ghost on network filesa/);
    assert.deepEqual(await state(), before);
    assert.ok(!existsSync(hosts), 'no file written either');
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo']);
    // The same attach without the bad link works (nothing half-done blocks the name).
    await attach(c, ['--network', 'filesa', '--name', 'delta']);
    await daemon.cli(['detach', 'delta']);
  });

  test('the resolver is the first-joined network\'s, before and after a restart', async () => {
    // Restored in the order of network ids: join the later one first, so that restore order differs.
    const nets = ((await daemon.client.call('GET', '/networks')) as { Name: string; Id: string }[]).filter((n) => n.Name === 'filesa' || n.Name === 'filesb');
    nets.sort((x, y) => (x.Id < y.Id ? 1 : -1));
    const [first, second] = nets.map((n) => n.Name);
    const gateway = { filesa: 'nameserver 192.0.2.1', filesb: 'nameserver 203.0.113.1' } as Record<string, string>;
    const c = await container();
    const r = await attach(c, ['--network', first, '--name', 'ordered']);
    await attach(c, ['--network', second]);
    assert.ok(lines(r.resolvConfPath!).includes(gateway[first]), `the first network's resolver (${first})`);
    const before = readFileSync(r.resolvConfPath!, 'utf8');
    await daemon.stop('SIGKILL');
    await daemon.launch();
    assert.equal(readFileSync(r.resolvConfPath!, 'utf8'), before, 'resolv.conf unchanged by the restart');
    await daemon.cli(['detach', 'ordered']);
  });

  test('at start, directories of sandboxes that are gone are removed; live ones kept', async () => {
    const keep = await container();
    const doomed = await container();
    const rk = await attach(keep, ['--network', 'filesa', '--name', 'keeper']);
    const rd = await attach(doomed, ['--network', 'filesa', '--name', 'doomed']);
    const linker = await container();
    const rl = await attach(linker, ['--network', 'filesa', '--name', 'linker', '--link', 'keeper:kk']);
    assert.ok(lines(rl.hostsPath!).includes(`${ip(rk.ipv4)}\tkk keeper`));
    const orphan = join(containersDir(), randomBytes(32).toString('hex'));
    mkdirSync(orphan);
    writeFileSync(join(orphan, 'hosts'), 'left over\n');
    await daemon.stop('SIGKILL');
    await doomed.stop();
    await daemon.launch();
    assert.ok(!existsSync(orphan), 'a directory no sandbox owns is removed');
    assert.ok(!existsSync(join(containersDir(), rd.sandboxId)), 'the dead container\'s directory is removed');
    assert.ok(lines(rk.hostsPath!).includes(`${ip(rk.ipv4)}\tkeeper`), 'the live container keeps its files');
    assert.ok(lines(rl.hostsPath!).includes(`${ip(rk.ipv4)}\tkk keeper`), 'links are kept across a restart');
    await daemon.cli(['detach', 'keeper']);
    assert.ok(!lines(rl.hostsPath!).some((l) => l.endsWith('\tkk keeper')), 'and still follow the name');
    await daemon.cli(['detach', 'linker']);
    assert.ok(!existsSync(join(containersDir(), rk.sandboxId)));
  });
});
