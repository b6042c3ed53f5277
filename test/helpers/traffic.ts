/** Test traffic helpers shared by the published-port tests: long-running servers and a UDP client. */
import { spawn, type ChildProcess } from 'node:child_process';

/** A UDP client (`node -e UDP_CLIENT HOST PORT [TIMEOUT_MS]`) printing the first answer; exits 1 on error or timeout. */
export const UDP_CLIENT =
  "const [h,p,t]=process.argv.slice(1);const d=require('dgram').createSocket(h.includes(':')?'udp6':'udp4');" +
  "d.on('message',(m)=>{process.stdout.write(m.toString());process.exit(0)});d.on('error',(e)=>{process.stderr.write(e.code+'\\n');process.exit(1)});" +
  "setTimeout(()=>{process.stderr.write('timeout\\n');process.exit(1)},Number(t||1500));d.send('x',Number(p),h);";

/** Starts a long-running process and waits for it to print "listening". */
export async function serve(argv: string[]): Promise<ChildProcess> {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code}`)));
  });
  return child;
}

/** What a published-port suite started, stopped in order: servers, containers, the daemon, the namespaces. */
export async function stopAll(processes: ChildProcess[], containers: { stop(): Promise<void> }[], daemon?: { destroy(): Promise<void> }, topo?: { destroy(): Promise<void> }): Promise<void> {
  for (const p of processes) p.kill('SIGKILL');
  for (const c of containers) await c.stop();
  await daemon?.destroy();
  await topo?.destroy();
}
