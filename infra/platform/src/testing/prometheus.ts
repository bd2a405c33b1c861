/** One sample line of a Prometheus text exposition. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

/** A parsed exposition, with lookups that read like the assertions they serve. */
export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
  /** The samples named `name` whose labels include every one of `labels`. */
  series(name: string, labels?: Record<string, string>): Sample[];
  /** The sum of those samples' values (0 when there are none). */
  value(name: string, labels?: Record<string, string>): number;
  /** The distinct values of `label` across every sample. */
  labelValues(label: string): Set<string>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
// Sample names a family of these types adds to its own name.
const SUFFIXES: Record<string, RegExp> = { histogram: /_(bucket|sum|count)$/, summary: /_(sum|count)$/ };

const unescape = (value: string) => value.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char));

// As Prometheus reads them (Go's ParseFloat): NaN and Inf in any case. prom-client writes NaN as `Nan`.
function parseValue(text: string, line: string): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`Bad sample value in: ${line}`);
  return value;
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const start = LABEL.lastIndex;
    const match = LABEL.exec(text);
    if (!match || match.index !== start) throw new Error(`Bad labels in: ${line}`);
    const [, name = '', value = ''] = match;
    if (name in labels) throw new Error(`Label ${name} twice in: ${line}`);
    labels[name] = unescape(value);
  }
  return labels;
}

/**
 * Parses the Prometheus text format (0.0.4) strictly: every sample belongs to a family declared before it by
 * exactly one `# HELP` and one `# TYPE`, a family's samples are contiguous, and no series appears twice.
 */
export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const helps = new Map<string, string>();
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const comment = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (comment) {
      const [, kind, name = '', rest = ''] = comment;
      if (!METRIC_NAME.test(name)) throw new Error(`Bad metric name in: ${line}`);
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`Second HELP for ${name}`);
        helps.set(name, rest);
      } else {
        if (families.has(name)) throw new Error(`Second TYPE for ${name}`);
        current = { name, type: rest, help: helps.get(name) ?? '', samples: [] };
        families.set(name, current);
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`Not a sample line: ${line}`);
    const [, name = '', labelText, valueText = ''] = match;
    const suffix = current && SUFFIXES[current.type];
    const family = current && (name === current.name || (suffix && name.replace(suffix, '') === current.name)) ? current : undefined;
    if (!family) throw new Error(`Sample outside its family (no TYPE just before it): ${line}`);
    if (!helps.has(family.name)) throw new Error(`No HELP for ${family.name}`);
    const sample = { name, labels: labelText ? parseLabels(labelText, line) : {}, value: parseValue(valueText, line) };
    const key = `${name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(key)) throw new Error(`Series twice: ${line}`);
    seen.add(key);
    family.samples.push(sample);
    samples.push(sample);
  }
  const series = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return {
    families,
    samples,
    series,
    value: (name, labels) => series(name, labels).reduce((sum, sample) => sum + sample.value, 0),
    labelValues: (label) => new Set(samples.flatMap((sample) => (label in sample.labels ? [sample.labels[label] as string] : []))),
  };
}
