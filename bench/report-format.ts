/** Formatting shared by the report's sections. */

/** Footnotes: each distinct reason gets a number, cells show [n]. */
export class Notes {
  private readonly list: string[] = [];

  ref(text: string): string {
    let i = this.list.indexOf(text);
    if (i < 0) i = this.list.push(text) - 1;
    return `[${i + 1}]`;
  }

  render(): string {
    return this.list.map((t, i) => `${i + 1}. ${t}`).join('\n');
  }
}

export function fmt(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

export function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n}${s}`;
}

function row(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function table(head: string[], rows: string[][]): string {
  return [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
}

