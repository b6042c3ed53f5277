// What a test run may never change on the machine, outside network namespaces: CNI's directories (libcni's
// cache, configurations, plugins), named network namespaces the tests made (netdt-*), and container runtimes'
// state (runc, containerd, podman, dockerd: /run, /var/lib and /etc entries, cgroups). `machineState()` lists them;
// `changes(before, after)` says, one line each, what differs. Used by scripts/run-tests.js after the suite.
// `netdNftTables()` lists the nf_tables tables named netd* in the namespace it runs in (the nftables backend's
// `inet netd-<instance>`): any that appears there during a run is a leak into the machine's own namespace.
'use strict';
const { spawnSync } = require('node:child_process');
const { lstatSync, readdirSync } = require('node:fs');
const { join } = require('node:path');

/** Trees whose every entry (name, type, size, mtime) must be as before: a test writing there wrote the machine's. */
const TREES = ['/var/lib/cni', '/etc/cni/net.d', '/opt/cni/bin'];
/** Directories that must gain no entry: runtimes' state on the machine. */
const STATE_DIRS = ['/run/runc', '/run/crun', '/run/containerd', '/run/containerd/runc', '/run/libpod', '/run/containers', '/run/containers/storage', '/var/lib/containerd', '/var/lib/containers', '/var/lib/containers/storage', '/run/docker', '/run/docker/plugins', '/run/docker/netns', '/var/lib/docker', '/etc/docker'];
const NETNS_DIR = '/run/netns';
const CGROUP_ROOT = '/sys/fs/cgroup';
const MAX_ENTRIES = 20000;

function list(dir) {
  try {
    return readdirSync(dir).sort();
  } catch {
    return undefined;
  }
}

/** `path type size mtime` for `dir` and everything below it (symlinks not followed); [] when it does not exist. */
function tree(dir) {
  const out = [];
  const walk = (path) => {
    if (out.length >= MAX_ENTRIES) return;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : 'file';
    out.push(`${path} ${type} ${st.isDirectory() ? '-' : st.size} ${st.mtimeMs}`);
    if (st.isDirectory()) for (const e of list(path) ?? []) walk(join(path, e));
  };
  walk(dir);
  return out;
}

/** systemd's own units (a slice, scope, service or mount it starts meanwhile) are not the suite's doing. */
const SYSTEMD_UNIT = /\.(slice|scope|service|mount|socket)$/;

/** The cgroups at the top of every hierarchy (where runtimes put theirs: libpod_parent, a containerd namespace). */
function topCgroups(root) {
  const out = [];
  for (const h of list(root) ?? []) {
    const path = join(root, h);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    if (!st.isDirectory()) continue;
    out.push(path);
    for (const e of list(path) ?? []) {
      try {
        if (!SYSTEMD_UNIT.test(e) && lstatSync(join(path, e)).isDirectory()) out.push(join(path, e));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

/** A snapshot of what the suite must leave alone; `root` prefixes every path (tests point it at a scratch tree). */
function machineState(root = '/') {
  const at = (p) => join(root, p);
  const state = {};
  for (const t of TREES) state[t] = tree(at(t));
  for (const d of STATE_DIRS) state[d] = (list(at(d)) ?? []).map((e) => join(at(d), e));
  state[NETNS_DIR] = (list(at(NETNS_DIR)) ?? []).filter((e) => e.startsWith('netdt-')).map((e) => join(at(NETNS_DIR), e));
  state[CGROUP_ROOT] = topCgroups(at(CGROUP_ROOT));
  return state;
}

/** One line per difference: trees must be identical, the other listings must gain nothing. */
function changes(before, after) {
  const lines = [];
  for (const t of TREES) {
    const b = new Set(before[t]);
    const a = new Set(after[t]);
    for (const e of after[t]) if (!b.has(e)) lines.push(`${t}: added or changed ${e}`);
    for (const e of before[t]) if (!a.has(e)) lines.push(`${t}: removed or changed ${e}`);
  }
  for (const d of [...STATE_DIRS, NETNS_DIR, CGROUP_ROOT]) {
    const b = new Set(before[d]);
    for (const e of after[d]) if (!b.has(e)) lines.push(`${d}: left ${e}`);
  }
  return lines;
}

/** `family name` of each table named netd* in `nft list tables` output (`table inet netd-0123abcd`). */
function netdNftTablesIn(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^table\s+(\S+)\s+(\S+)/.exec(line.trim());
    if (m && /^netd/.test(m[2])) out.push(`${m[1]} ${m[2]}`);
  }
  return out.sort();
}

let warnedNoNft = false;
/** The tables named netd* in this namespace (`nft list tables`); [] with a one-time note when nft is missing. */
function netdNftTables() {
  const res = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  if (res.status !== 0) {
    if (!warnedNoNft) console.error(`note: cannot list nf_tables tables (${res.error ? res.error.message : (res.stderr || '').trim()}): netd* tables left in this namespace go unseen`);
    warnedNoNft = true;
    return [];
  }
  return netdNftTablesIn(res.stdout);
}

module.exports = { machineState, changes, netdNftTables, netdNftTablesIn, TREES, STATE_DIRS };
