/**
 * The fault points (src/transaction/fault.ts) as the crash and soak tests use them: collected from the
 * code, not listed here. Loading the daemon's modules runs every operation's declaration, which fills
 * the registry; a step added to any operation shows up here without editing a test.
 */
import '../../src/daemon/daemon.js';
import { declaredFaultPoints } from '../../src/transaction/fault.js';

export const FAULT_POINTS: Record<string, string[]> = declaredFaultPoints();
