/**
 * A tiny TCP probe, run inside namespaces with nsenter to check that a path carries traffic:
 *   node probe.js serve PORT               listen on PORT (all addresses), print "listening", greet each client
 *   node probe.js connect HOST PORT MS     connect, expect the greeting within MS ms; exit 0 on success
 */
import { createServer, connect } from 'node:net';

const GREETING = 'netd-bench\n';
const [mode, a, b, c] = process.argv.slice(2);

if (mode === 'serve') {
  const server = createServer((s) => s.end(GREETING));
  server.listen(Number(a), () => process.stdout.write('listening\n'));
} else if (mode === 'connect') {
  const timeout = Number(c ?? 3000);
  let got = '';
  const sock = connect({ host: a, port: Number(b) });
  const timer = setTimeout(() => {
    process.stderr.write(`no greeting within ${timeout} ms\n`);
    process.exit(1);
  }, timeout);
  sock.on('data', (d) => (got += d.toString()));
  sock.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
  sock.on('close', () => {
    clearTimeout(timer);
    if (got === GREETING) process.exit(0);
    process.stderr.write(`unexpected answer ${JSON.stringify(got)}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: probe.js serve PORT | connect HOST PORT TIMEOUT_MS\n');
  process.exit(2);
}
