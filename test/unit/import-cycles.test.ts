/**
 * No import cycles in src/, checked twice:
 *   - at run time: the compiled require graph (dist/src, the modules of the current sources only), where
 *     imports tsc erases (types only) are gone and lazy requires count. A cycle there means a module can
 *     run against another one's half-initialised exports.
 *   - in the sources, type-only imports included: modules that need each other's types are one concept
 *     split in two, or a shared type living in the wrong one (move it to a leaf module).
 * Each cycle is printed as a closed path, a → b → a.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// dist/test/unit -> the repository
const REPO = resolve(__dirname, '../../..');
const SRC = join(REPO, 'src');
const DIST_SRC = join(REPO, 'dist/src');

type Graph = ReadonlyMap<string, readonly string[]>;

/** The current sources, as paths relative to src/ with .js for .ts (what the imports name). */
function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = join(dir, e.name);
    if (e.isDirectory()) return modules(file);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [relative(SRC, file).replace(/\.ts$/, '.js')] : [];
  });
}

/**
 * Relative module names in TS source: `import … from`, `export … from`, `import '…'`, `import('…')`,
 * `require('…')`, type-only ones included. The name is in the first group that matched.
 */
const SOURCE_IMPORT = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|^\s*import\s*["'](\.{1,2}\/[^"']+)["']|\b(?:import|require)\(\s*["'](\.{1,2}\/[^"']+)["']/gm;

/** A relative require in compiled code. */
const COMPILED_REQUIRE = /\brequire\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

const imported = (m: RegExpMatchArray): string => m[1] ?? m[2] ?? m[3];

/** Each module's relative imports found by `pattern` in its text (from `read`), resolved to module names. */
function graphOf(read: (name: string) => string, pattern: RegExp): Map<string, string[]> {
  const names = modules();
  const known = new Set(names);
  const graph = new Map<string, string[]>();
  for (const name of names) {
    const deps = new Set<string>();
    for (const m of read(name).matchAll(pattern)) {
      const dep = relative(SRC, resolve(SRC, dirname(name), imported(m)));
      if (known.has(dep)) deps.add(dep);
    }
    graph.set(name, [...deps].sort());
  }
  return graph;
}

/** What runs: `require("./x.js")` in the compiled modules. */
const runtimeGraph = () => graphOf((name) => readFileSync(join(DIST_SRC, name), 'utf8'), COMPILED_REQUIRE);

/** What the sources name, types included. */
const sourceGraph = () => graphOf((name) => readFileSync(join(SRC, name.replace(/\.js$/, '.ts')), 'utf8'), SOURCE_IMPORT);

/** Every cycle's modules: strongly connected components of more than one module, or a self-import (Tarjan). */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

/** A shortest closed path through a cycle's modules, from its first one: a → b → a. */
function closedPath(graph: Graph, component: readonly string[]): string {
  const inside = new Set(component);
  const start = component[0];
  const prev = new Map<string, string>(); // breadth-first, from start back to start
  const queue = [start];
  while (queue.length > 0 && !prev.has(start)) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w) || prev.has(w)) continue;
      prev.set(w, v);
      queue.push(w);
    }
  }
  const steps = [start];
  for (let v = prev.get(start)!; v !== start; v = prev.get(v)!) steps.unshift(v);
  return [start, ...steps].join(' → ');
}

function assertNoCycles(graph: Graph, what: string): void {
  assert.ok(graph.size > 20 && [...graph.values()].some((deps) => deps.length > 0), `the ${what} graph is empty: is dist/ built?`);
  const found = cycles(graph).map((c) => closedPath(graph, c));
  assert.deepEqual(found, [], `import cycles in src/ (${what}):\n${found.join('\n')}`);
}

test('the cycle finder finds cycles (a → b → a, a self-import) and none in a tree', () => {
  const g = new Map([
    ['a.js', ['b.js']],
    ['b.js', ['c.js', 'a.js']],
    ['c.js', []],
    ['d.js', ['d.js']],
  ]);
  assert.deepEqual(cycles(g), [['a.js', 'b.js'], ['d.js']]);
  assert.equal(closedPath(g, ['a.js', 'b.js']), 'a.js → b.js → a.js');
  assert.equal(closedPath(g, ['d.js']), 'd.js → d.js');
  assert.deepEqual(cycles(new Map([['a.js', ['b.js', 'c.js']], ['b.js', ['c.js']], ['c.js', []]])), []);
});

test('the source scanner sees every kind of relative import, type-only ones too', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    'import {\n  c,\n  type C,\n} from "./c.js";',
    "export type { D } from './d.js';",
    "export * from './e.js';",
    "import './f.js';",
    "const g = require('./g.js') as typeof import('./h.js');",
    "import { readFileSync } from 'node:fs';",
    "// a comment that says from './not-an-import.js'",
    "export const NOT_AN_IMPORT = './i.js';",
  ].join('\n');
  assert.deepEqual(
    [...text.matchAll(SOURCE_IMPORT)].map(imported),
    ['./a.js', '../b.js', './c.js', './d.js', './e.js', './f.js', './g.js', './h.js'],
  );
});

test('no import cycles in src/ at run time (the compiled require graph)', () => assertNoCycles(runtimeGraph(), 'compiled requires'));

test('no import cycles in src/ counting type-only imports', () => assertNoCycles(sourceGraph(), 'source imports, types included'));
