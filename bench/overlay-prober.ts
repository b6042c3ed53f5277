/**
 * The cross-host convergence prober of the `overlay` item, run once inside the client container on host 1
 * (`nsenter -t PID -n node overlay-prober.js`) and fed targets on stdin, one line each: `IP PORT`.
 *
 * For a target it starts a TCP connect every INTERVAL_MS (each attempt given up after ATTEMPT_MS), so a SYN
 * lost while the path is not there yet (no neighbour entry, no FDB entry on either host) costs one
 * interval, not TCP's 1 s SYN retransmission; the first attempt that connects wins, and it prints
 * `ok MS ATTEMPTS` (MS: from the line's arrival to the connect) and drops the others; `timeout MS ATTEMPTS`
 * after GIVE_UP_MS. A long-running process, so no process start-up in the figure (a `ping -c1` per try costs ~5 ms).
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const INTERVAL_MS = 2;
const ATTEMPT_MS = 200;
const GIVE_UP_MS = 5000;

function probe(host: string, port: number): void {
  const start = process.hrtime.bigint();
  const since = () => (Number(process.hrtime.bigint() - start) / 1e6).toFixed(2);
  const open = new Set<Socket>();
  let attempts = 0;
  let finished = false;
  const finish = (word: string) => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    clearTimeout(deadline);
    process.stdout.write(`${word} ${since()} ${attempts}\n`);
    for (const s of open) s.destroy();
  };
  const attempt = () => {
    attempts++;
    const s = connect({ host, port });
    open.add(s);
    s.setTimeout(ATTEMPT_MS, () => s.destroy());
    s.once('connect', () => finish('ok'));
    s.on('error', () => undefined); // EHOSTUNREACH while the neighbour is unresolved: the next attempt follows
    s.once('close', () => open.delete(s));
  };
  const timer = setInterval(attempt, INTERVAL_MS);
  const deadline = setTimeout(() => finish('timeout'), GIVE_UP_MS);
  attempt();
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [host, port] = line.trim().split(/\s+/);
  if (host && Number(port) > 0) probe(host, Number(port));
});
lines.on('close', () => process.exit(0));
process.stdout.write('ready\n');
