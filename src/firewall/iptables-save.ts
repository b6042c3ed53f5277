/**
 * Reading iptables-save output: chains and rules per table, each rule with its verbatim text (used as is
 * for -D/-I), its tokens, its comment and the key it is compared by against the rules netd wants.
 */
import { argsKey } from './model.js';

export interface SavedRule {
  readonly table: string;
  readonly chain: string;
  /** 1-based position within its chain at the time of the read. */
  readonly index: number;
  /** The text after `-A CHAIN `, exactly as printed (valid restore syntax, used verbatim for -D/-I). */
  readonly raw: string;
  readonly tokens: readonly string[];
  readonly key: string;
  /** The first `-m comment --comment` value, unquoted. */
  readonly comment?: string;
}

export interface SavedTable {
  readonly chains: Set<string>;
  /** Policies of the built-in chains (`:FORWARD DROP`). */
  readonly policies: Map<string, string>;
  /** Rules per chain, in order. */
  readonly rules: Map<string, SavedRule[]>;
}

export type SavedState = Map<string, SavedTable>;

/** Splits a saved rule into tokens, undoing iptables-save's double-quoting ("a b", \" and \\ escapes). */
export function tokenizeSaved(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ' || text[i] === '\t') {
      i++;
      continue;
    }
    let tok = '';
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          tok += text[i++];
        }
        i++; // closing quote
      } else {
        tok += text[i++];
      }
    }
    out.push(tok);
  }
  return out;
}

/** Parses iptables-save / ip6tables-save output. Comment lines and anything unrecognised are ignored. */
export function parseSave(text: string): SavedState {
  const state: SavedState = new Map();
  let current: SavedTable | undefined;
  let tableName = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      tableName = line.slice(1).trim();
      current = state.get(tableName) ?? { chains: new Set(), policies: new Map(), rules: new Map() };
      state.set(tableName, current);
    } else if (!current) {
      continue;
    } else if (line.startsWith(':')) {
      const [chain, policy] = line.slice(1).split(' ');
      current.chains.add(chain);
      if (policy && policy !== '-') current.policies.set(chain, policy);
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const raw = sp < 0 ? '' : rest.slice(sp + 1);
      const tokens = tokenizeSaved(raw);
      const ci = tokens.indexOf('--comment');
      const list = current.rules.get(chain) ?? [];
      current.rules.set(chain, list);
      list.push({
        table: tableName,
        chain,
        index: list.length + 1,
        raw,
        tokens,
        key: argsKey(tokens),
        comment: ci >= 0 ? tokens[ci + 1] : undefined,
      });
    } else if (line.startsWith('COMMIT')) {
      current = undefined;
    }
  }
  return state;
}

/** iptables-save text normalised for comparison: no '#' lines, chain counters zeroed. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith(':') ? l.replace(/\[\d+:\d+\]$/, '[0:0]') : l))
    .join('\n');
}
