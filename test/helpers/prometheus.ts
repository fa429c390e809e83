// Parses metrics exposition text with Prometheus' own Python client (Debian's
// python3-prometheus-client, installed by scripts/setup.mjs): its text-format parser, or its strict
// OpenMetrics parser. The npm parser (parse-prometheus-text-format) was tried and refused: it merges
// histogram series whose "le" label comes first and drops their labels, _sum and _count.

import { spawnSync } from 'node:child_process';

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

const SCRIPT = `
import json, math, sys
fmt = sys.argv[1]
if fmt == 'openmetrics':
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
def number(v):
    return v if math.isfinite(v) else str(v)
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    out.append({'name': family.name, 'type': family.type, 'help': family.documentation,
                'samples': [{'name': s.name, 'labels': s.labels, 'value': number(float(s.value))} for s in family.samples]})
print(json.dumps(out))
`;

/** Every metric family in `text`; throws with the parser's message when the text is not valid. */
export function parseExposition(text: string, format: 'prometheus' | 'openmetrics' = 'prometheus'): Family[] {
  const result = spawnSync('/usr/bin/python3', ['-c', SCRIPT, format], { input: text, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`the ${format} parser refused the exposition: ${result.stderr.trim().split('\n').pop()}`);
  const families = JSON.parse(result.stdout) as Array<Omit<Family, 'samples'> & { samples: Array<Omit<Sample, 'value'> & { value: number | string }> }>;
  return families.map((family) => ({
    ...family,
    samples: family.samples.map((s) => ({ ...s, value: typeof s.value === 'number' ? s.value : s.value === 'inf' ? Infinity : s.value === '-inf' ? -Infinity : NaN })),
  }));
}

/** The samples named `name` whose labels include every one of `labels`. */
export function samples(families: readonly Family[], name: string, labels: Record<string, string> = {}): Sample[] {
  const found: Sample[] = [];
  for (const family of families) {
    for (const sample of family.samples) {
      if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) found.push(sample);
    }
  }
  return found;
}

/** The one sample's value; throws when there is none or more than one. */
export function value(families: readonly Family[], name: string, labels: Record<string, string> = {}): number {
  const found = samples(families, name, labels);
  if (found.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

/** The sum over the samples named `name` with these labels (0 when there are none). */
export function total(families: readonly Family[], name: string, labels: Record<string, string> = {}): number {
  return samples(families, name, labels).reduce((n, s) => n + s.value, 0);
}
