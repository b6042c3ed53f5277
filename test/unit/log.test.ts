/**
 * The daemon's logger (src/log.ts) writes off the answer path: a reader of its stderr that stops reading
 * (a stalled journald, a full pipe) does not stop the daemon, and every line still arrives, in order, when
 * the reader reads again and the process exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOG_JS = join(__dirname, '..', '..', 'src', 'log.js');
const LINES = 5000; // ~0.8 MB: many times what a pipe and the reader's buffer hold

test('log: a stalled reader of stderr does not block the logging process; every line arrives in order at exit', async () => {
  const script = `
    const { createLogger } = require(${JSON.stringify(LOG_JS)});
    const log = createLogger('info');
    const started = Date.now();
    for (let i = 0; i < ${LINES}; i++) log.info({ op: 'attach', seq: i, pad: 'x'.repeat(120) }, 'attach');
    process.stdout.write('logged in ' + (Date.now() - started) + ' ms\\n');
  `;
  // stderr is a real pipe (a FIFO), blocking on the child's side, as a daemon's stderr read by another process is.
  const dir = mkdtempSync(join(tmpdir(), 'netd-log-'));
  const fifo = join(dir, 'stderr');
  execFileSync('mkfifo', [fifo]);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', writeFd] });
  closeSync(writeFd);
  const stderr = new Socket({ fd: readFd, readable: true, writable: false });
  stderr.pause();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // stderr is not read until the child says it is done logging (or 10 s have passed).
  const said = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d.toString().trim());
    });
  });
  let err = '';
  const drained = new Promise((resolve) => stderr.once('end', resolve));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  stderr.resume();
  assert.equal(await exited, 0);
  await drained;
  rmSync(dir, { recursive: true, force: true });
  assert.ok(said !== undefined, 'the process went on while nobody read its log (it never got past its log calls)');
  const seqs = err
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
  assert.equal(seqs.length, LINES, 'every line is written by the time the process has exited');
  assert.ok(
    seqs.every((s, i) => s === i),
    'lines in order',
  );
});
