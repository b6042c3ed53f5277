/**
 * FilesRoot: client-named paths are accepted only plainly below the administrator's directory, and a
 * write never follows a symlink out of it, even one planted after the path was checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { FilesRoot } from '../../src/dns/files-root.js';
import { InvalidArgumentError } from '../../src/errors.js';

function withDirs(fn: (root: string, outside: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'netd-fr-root-'));
  const outside = mkdtempSync(join(tmpdir(), 'netd-fr-out-'));
  try {
    fn(root, outside);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
}

const is400 = (re: RegExp) => (err: unknown) => err instanceof InvalidArgumentError && err.status === 400 && re.test(err.message);

test('without --files-root every client path is refused', () => {
  assert.throws(() => FilesRoot.check(undefined, '/tmp/x', 'hosts'), is400(/unless the daemon was started with --files-root/));
});

test('the root must be an absolute, existing directory', () => {
  withDirs((root) => {
    assert.throws(() => FilesRoot.open('relative'), is400(/absolute/));
    assert.throws(() => FilesRoot.open(join(root, 'missing')), is400(/ENOENT/));
    writeFileSync(join(root, 'f'), '');
    assert.throws(() => FilesRoot.open(join(root, 'f')), is400(/not a directory/));
    assert.equal(FilesRoot.open(root + '/').dir, root);
  });
});

test('hostile paths are refused with 400 and nothing is written', () => {
  withDirs((root, outside) => {
    const fr = FilesRoot.open(root);
    writeFileSync(join(outside, 'victim'), 'keep\n');
    mkdirSync(join(root, 'sub'));
    symlinkSync(outside, join(root, 'to-outside'));
    symlinkSync(join(outside, 'victim'), join(root, 'victim-link'));
    symlinkSync('..', join(root, 'sub', 'up'));
    const hostile: [unknown, RegExp][] = [
      [join(outside, 'victim'), /not under the files root/],
      ['/etc/hosts', /not under the files root/],
      ['/etc/shadow', /not under the files root/],
      [root, /not under the files root/],
      [`${root}-x/hosts`, /not under the files root/],
      [`${root}/../${outside.split('/').pop()}/victim`, /spelled plainly/],
      [`${root}/sub/../../etc/hosts`, /spelled plainly/],
      [`${root}/./hosts`, /spelled plainly/],
      [`${root}//hosts`, /spelled plainly/],
      [`${root}/hosts/`, /spelled plainly/],
      [`${root}/sub/.`, /spelled plainly/],
      ['hosts', /not an absolute path/],
      ['', /not an absolute path/],
      [`${root}/a\0b`, /control characters/],
      [`${root}/a\nb`, /control characters/],
      [`${root}/${'a'.repeat(256)}`, /longer than 255/],
      [`${root}/${'a/'.repeat(2100)}x`, /too long/],
      [`${root}/to-outside/victim`, /symlink or not a directory/],
      [`${root}/sub/up/to-outside/victim`, /symlink or not a directory/],
      [`${root}/victim-link`, /is a symlink/],
      [`${root}/sub`, /not a regular file/],
      [`${root}/missing/hosts`, /ENOENT/],
      [42, /must be a path/],
      [null, /must be a path/],
      [['/x'], /must be a path/],
    ];
    for (const [path, why] of hostile) assert.throws(() => FilesRoot.check(fr, path, 'hosts'), is400(why), JSON.stringify(path));
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep\n');
    assert.deepEqual(readdirSync(outside), ['victim']);
  });
});

test('a plain path below the root is written atomically, replacing a regular file', () => {
  withDirs((root) => {
    const fr = FilesRoot.open(root);
    mkdirSync(join(root, 'c1'));
    const path = join(root, 'c1', 'hosts');
    writeFileSync(path, 'old\n');
    fr.write(FilesRoot.check(fr, path, 'hosts'), 'new\n');
    assert.equal(readFileSync(path, 'utf8'), 'new\n');
    assert.deepEqual(readdirSync(join(root, 'c1')), ['hosts'], 'no temporary left');
    // A hard link below the root to a file elsewhere: replaced, never written through.
    writeFileSync(join(root, 'elsewhere'), 'keep\n');
    linkSync(join(root, 'elsewhere'), join(root, 'c1', 'linked'));
    fr.write(FilesRoot.check(fr, join(root, 'c1', 'linked'), 'hosts'), 'new\n');
    assert.equal(readFileSync(join(root, 'elsewhere'), 'utf8'), 'keep\n');
  });
});

test('a directory swapped for a symlink after the check does not lead the write out', () => {
  withDirs((root, outside) => {
    const fr = FilesRoot.open(root);
    mkdirSync(join(root, 'c1'));
    writeFileSync(join(outside, 'hosts'), 'keep\n');
    const path = join(root, 'c1', 'hosts');
    FilesRoot.check(fr, path, 'hosts');
    // Between the check and the write, someone with access below the root plants a link.
    renameSync(join(root, 'c1'), join(root, 'c1-old'));
    symlinkSync(outside, join(root, 'c1'));
    assert.throws(() => fr.write(path, 'evil\n'), is400(/symlink or not a directory/));
    assert.equal(readFileSync(join(outside, 'hosts'), 'utf8'), 'keep\n');
    assert.ok(lstatSync(join(root, 'c1')).isSymbolicLink());
  });
});
