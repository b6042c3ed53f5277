#!/usr/bin/env node
/**
 * postinstall: fix netlink@0.3.0's uncatchable abort and build it from source.
 *
 * netlink's Socket::PollHandler reports a poll error (e.g. ENOBUFS when the receive buffer overflows)
 * through ErrnoException(..., syscall = NULL, ...); napi then throws while building the error object and,
 * with no JS frame to catch it, the process dies with "terminate called after throwing an instance of
 * 'Napi::Error'". Passing "poll" as the syscall name turns that into an ordinary 'error' event on the
 * socket (which netd handles by reopening it).
 *
 * The package ships prebuilt binaries of the unpatched source. node-gyp-build loads build/Release in
 * preference to prebuilds/, so building the patched source there is enough.
 *
 * Idempotent: an already patched source is accepted, and the build is skipped when a stamp shows that
 * the same source was already built for this Node ABI. Fails (exit 1) if the line to patch is missing.
 * Works offline: it uses the Node headers that are on the machine.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');

const EXPECTED_VERSION = '0.3.0';
const BUGGY = 'ErrnoException(obj->Env(), -status, NULL, ';
const FIXED = 'ErrnoException(obj->Env(), -status, "poll", ';
const NPM_BUNDLED_NODE_GYP = '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js';
const STAMP = 'netd-patched.stamp';

function fail(message) {
  console.error(`patch-netlink: ${message}`);
  process.exit(1);
}

function log(message) {
  console.log(`patch-netlink: ${message}`);
}

/** The installed netlink package directory, resolved from the project root like the daemon does. */
function netlinkDir() {
  const root = path.resolve(__dirname, '..');
  let pkgJson;
  try {
    pkgJson = require.resolve('netlink/package.json', { paths: [root] });
  } catch (err) {
    fail(`netlink is not installed under ${root}: ${err.message}`);
  }
  const dir = path.dirname(pkgJson);
  const { version } = JSON.parse(fs.readFileSync(pkgJson, 'utf8'));
  if (version !== EXPECTED_VERSION) {
    fail(`netlink ${version} found, this patch is for ${EXPECTED_VERSION}: review the fix and update the script`);
  }
  return dir;
}

/** Applies the one-line fix. Returns the patched source text. */
function patchSource(dir) {
  const file = path.join(dir, 'src', 'binding.cc');
  let source;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${err.message}`);
  }
  const buggy = source.split(BUGGY).length - 1;
  const fixed = source.split(FIXED).length - 1;
  if (buggy === 0 && fixed === 1) {
    log('source already patched');
    return source;
  }
  if (buggy !== 1 || fixed !== 0) {
    fail(`expected exactly one occurrence of '${BUGGY}' in ${file} (found ${buggy}, patched ${fixed}); refusing to guess`);
  }
  source = source.replace(BUGGY, FIXED);
  // Write via a temporary file so an interrupted install never leaves a half-written source.
  const tmp = `${file}.netd-tmp`;
  fs.writeFileSync(tmp, source);
  fs.renameSync(tmp, file);
  log(`patched ${file}`);
  return source;
}

/** node-gyp as npm provides it to lifecycle scripts, else npm's bundled copy. */
function nodeGypBin() {
  const candidates = [process.env.npm_config_node_gyp, NPM_BUNDLED_NODE_GYP].filter(Boolean);
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) return candidate;
  }
  fail(`node-gyp not found (tried ${candidates.join(', ')})`);
}

/**
 * The Node headers to build against. npm passes its `nodedir` config on as npm_config_nodedir; when run
 * by hand, use the installation this node binary belongs to (/usr on Debian) so node-gyp never tries to
 * download headers.
 */
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}

function build(dir, source) {
  const binary = path.join(dir, 'build', 'Release', 'netlink_binding.node');
  const stampFile = path.join(dir, 'build', STAMP);
  const stamp = JSON.stringify({
    source: crypto.createHash('sha256').update(source).digest('hex'),
    node: process.version,
    modules: process.versions.modules,
    arch: process.arch,
  });
  if (fs.existsSync(binary) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp) {
    log('patched build is up to date');
    return binary;
  }

  const args = [nodeGypBin(), 'rebuild'];
  const nodedir = nodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  log(`building from source: ${process.execPath} ${args.join(' ')}`);
  const result = spawnSync(process.execPath, args, { cwd: dir, stdio: 'inherit', env: process.env });
  if (result.error) fail(`node-gyp could not run: ${result.error.message}`);
  if (result.status !== 0) fail(`node-gyp rebuild failed with exit ${result.status ?? result.signal}`);
  if (!fs.existsSync(binary)) fail(`node-gyp finished but ${binary} is missing`);
  fs.writeFileSync(stampFile, stamp);
  return binary;
}

/** Checks that loading netlink now picks the patched build, and that it loads. */
function verify(dir, binary) {
  let resolved;
  try {
    const nodeGypBuild = require(require.resolve('node-gyp-build', { paths: [dir] }));
    resolved = nodeGypBuild.resolve(dir);
  } catch (err) {
    fail(`node-gyp-build cannot resolve netlink's binary: ${err.message}`);
  }
  if (path.resolve(resolved) !== path.resolve(binary)) {
    fail(`netlink would load ${resolved}, not the patched ${binary} (is NETLINK_PREBUILD or PREBUILDS_ONLY set?)`);
  }
  try {
    require(binary);
  } catch (err) {
    fail(`the patched binary does not load: ${err.message}`);
  }
  log(`netlink loads ${path.relative(process.cwd(), binary) || binary}`);
}

function main() {
  const dir = netlinkDir();
  const source = patchSource(dir);
  const binary = build(dir, source);
  verify(dir, binary);
}

main();
