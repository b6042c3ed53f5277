/**
 * Fault injection for crash tests. With `NETD_FAULT_AT=<op>:<point>` in the daemon's environment, the
 * daemon kills itself (SIGKILL: no cleanup, no flushing, as a crash or an OOM kill would) when that point of
 * that operation is reached. Unset — the default — it does nothing. The points are named where they stand
 * (`before:<step>` and `after:<step>` of every transaction step, plus a few inside drivers); tests list
 * them and check that the daemon really died there.
 */
const target = process.env.NETD_FAULT_AT;

export function faultPoint(op: string, point: string): void {
  if (target !== undefined && target === `${op}:${point}`) {
    process.stderr.write(`netd: fault injected at ${target}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
