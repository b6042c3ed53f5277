/** Loopback in a namespace: a fresh network namespace has `lo` down, and containers expect it up. */
import { Netns } from './netns.js';
import { Rtnl, LOOPBACK_IFINDEX } from './rtnetlink.js';

/** Brings `lo` up in the namespace at `path` (a /proc/PID/ns/net or a bind-mounted netns file). */
export async function bringLoopbackUp(path: string): Promise<void> {
  const ns = Netns.open(path);
  try {
    const rtnl = Rtnl.open(ns);
    try {
      await rtnl.setLink(LOOPBACK_IFINDEX, { up: true }); // a no-op when it is up already
    } finally {
      rtnl.close();
    }
  } finally {
    ns.close();
  }
}
