/**
 * The points inside the creation of a persistent network namespace (createPersistentNetns) where a crash
 * test can stop: its mount point exists; its bind mount is made. Kept apart from netns.ts (which loads the
 * native addon) so that the controller can declare them as fault points without loading the kernel layer.
 */
export const NETNS_CREATE_POINTS = ['after:create mount point', 'after:bind mount'] as const;
export type NetnsCreatePoint = (typeof NETNS_CREATE_POINTS)[number];
