/**
 * The thread of link-deleter.ts: an rtnetlink socket of its own, in the namespace the thread was created
 * in (a new thread starts in its creator's), that deletes links on request. The kernel handles a netlink
 * request inside the sendmsg that carries it, so a deletion blocks this thread, not the daemon's event loop.
 */
import { parentPort } from 'node:worker_threads';
import { KernelError } from '../errors.js';
import { Rtnl } from './rtnetlink.js';
import type { DeleterReply, DeleterRequest } from './link-deleter.js';

const port = parentPort;
if (port) {
  const rtnl = Rtnl.open();
  const { dev, ino } = rtnl.namespace;
  port.postMessage({ ready: { dev, ino } } satisfies DeleterReply);
  port.on('message', (m: DeleterRequest) => {
    if (m.op === 'close') {
      rtnl.close();
      port.postMessage({ id: m.id, found: true } satisfies DeleterReply);
      port.close();
      return;
    }
    const work = m.op === 'group' ? rtnl.deleteLinkGroup(m.group) : rtnl.deleteLink(m.index).then(() => true);
    work.then(
      (found) => port.postMessage({ id: m.id, found } satisfies DeleterReply),
      (err: unknown) => {
        const k = err instanceof KernelError ? err : undefined;
        port.postMessage({ id: m.id, errno: k?.errno ?? 'EIO', message: (err as Error)?.message ?? String(err) } satisfies DeleterReply);
      },
    );
  });
}
