/**
 * The evaluation report in three forms: `report.json` (every number plus the config
 * and the model and corpus ids), a terminal summary table, and `report.html` — one
 * self-contained page (inline CSS and JS, no network) with bar charts of the
 * breakdowns and a Python-Tutor-like trace viewer: the source with the current line
 * highlighted and, per step, the true and predicted locals side by side, mismatches
 * marked, stepping forward and back.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { schemaIssue } from '../corpus/errors.js';
import { EvalError } from './errors.js';
import { BASELINES, PREDICTORS, PREDICTOR_LABELS, type Predictor } from './baselines.js';
import { DIMENSIONS, DIMENSION_LABELS, type BreakdownRow } from './breakdowns.js';
import { pct, type OutputSummary, type RolloutSummary, type StateSummary } from './metrics.js';
import type { TasksSection } from './tasks.js';
import type { TeacherForcedResult, ViewerTrace } from './teacher.js';

/** Output prediction figures beside the baseline that always answers the most frequent return value. */
export interface OutputSection {
  /** How the return value was obtained: `rollout` (whole trace generated) or `direct` (context → value). */
  mode: 'rollout' | 'direct';
  model: OutputSummary;
  /** The most frequent return value of the train split, scored the same way. */
  baseline: OutputSummary | null;
  flags: string[];
}

export interface RolloutSection {
  summary: RolloutSummary;
}

export interface EvalReport {
  /** Report format version; bump when a field changes meaning. */
  reportVersion: 1;
  execwm: string;
  createdAt: string;
  /** The options the evaluation ran with. */
  config: Record<string, unknown>;
  model: {
    dir: string;
    /** First hex digits of the weights' sha256. */
    id: string;
    /** Id of the corpus the model was trained on (compare with `corpus.id`). */
    trainedOn: string | null;
    step: number;
    params: number;
    config: Record<string, unknown>;
    diff: boolean;
    /** With `diff`: states listed only the changed locals. */
    changedOnly: boolean;
    /** Lines carried their operands' values (training's `operands`). */
    operands: boolean;
    stateWeight: number | null;
  };
  /** The corpus evaluated on; `id` is the manifest id training records too. */
  corpus: { dir: string; id: string; split: string; traces: number } | null;
  /** Frames scored and frames that could not be (did not fit the model's context). */
  coverage: { frames: number; framesSkipped: number; tracesSkipped: number };
  teacherForced: TeacherForcedResult | null;
  rollout: RolloutSection | null;
  /** Output prediction: direct (context → value) on a corpus; on CRUXEval, as asked. */
  output: OutputSection | null;
  /** Output prediction from the rollouts (the return value of the generated trace), with `--rollout`. */
  rolloutOutput: OutputSection | null;
  /** Derived tasks (`--tasks`): per task the model's figure beside its baseline; absent without `--tasks`. */
  tasks?: TasksSection;
  /** Every flag of the sections above, in one list. */
  flags: string[];
  timing: { seconds: number; backend: string; generatedTokens: number; tokensPerSecond: number | null };
}

const fmt = pct;

/** Writes a file atomically (temporary name, then rename) so a killed run never leaves half a report. */
function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Writes report.json and report.html into `dir`; returns their paths. */
export function writeReport(dir: string, report: EvalReport, examples: readonly ViewerTrace[]): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  writeAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  writeAtomic(html, renderHtml(report, examples));
  return { json, html };
}

const share = v.nullable(v.number());
const FIGURES = v.looseObject({ variableAccuracy: share, stateExactMatch: share });
const OUTPUT_SUMMARY = v.looseObject({ programs: v.number(), exactAccuracy: share, equalAccuracy: share });
const OUTPUT_SECTION = v.nullable(
  v.looseObject({ mode: v.picklist(['rollout', 'direct']), model: OUTPUT_SUMMARY, baseline: v.nullable(OUTPUT_SUMMARY), flags: v.array(v.string()) }),
);

/**
 * report.json as tools read it back (the demo's tables, the ablation): the headline sections
 * checked, every other field kept as written. Reports from before the rollout outputs were
 * scored beside the direct ones read with `rolloutOutput: null`.
 */
const REPORT_SCHEMA = v.looseObject({
  reportVersion: v.literal(1),
  model: v.looseObject({ id: v.string(), step: v.number(), params: v.number() }),
  corpus: v.nullable(v.looseObject({ id: v.string(), split: v.string(), traces: v.number() })),
  teacherForced: v.nullable(
    v.looseObject({
      model: v.looseObject({ frames: v.number(), variableAccuracy: share, stateExactMatch: share, undecodableShare: share }),
      baselines: v.record(v.string(), FIGURES),
      breakdowns: v.optional(v.looseObject({ event: v.optional(v.array(v.looseObject({ key: v.string(), figures: v.record(v.string(), FIGURES) }))) })),
    }),
  ),
  rollout: v.nullable(v.looseObject({ summary: v.record(v.string(), share) })),
  output: OUTPUT_SECTION,
  rolloutOutput: v.optional(OUTPUT_SECTION, null),
});

/** A report read back from report.json (see {@link readReport}). */
export type StoredReport = v.InferOutput<typeof REPORT_SCHEMA>;

/** Reads `dir/report.json`; a missing or damaged report is an EvalError in one line. */
export function readReport(dir: string): StoredReport {
  const file = join(dir, 'report.json');
  if (!existsSync(file)) throw new EvalError(`no report at ${file}`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new EvalError(`corrupt report ${file}: ${(err as Error).message}`);
  }
  const result = v.safeParse(REPORT_SCHEMA, json);
  if (!result.success) throw new EvalError(`corrupt report ${file}: ${schemaIssue(result.issues)}`);
  return result.output;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   '))
    .join('\n');
}

const STATE_ROWS: [string, keyof StateSummary][] = [
  ['variable accuracy', 'variableAccuracy'],
  ['state exact match', 'stateExactMatch'],
  ['undecodable share', 'undecodableShare'],
];

/** The terminal summary: headline figures beside the baselines, then the flags. */
export function renderSummary(report: EvalReport): string {
  const out: string[] = [];
  const c = report.corpus;
  out.push(
    `execwm eval: model ${report.model.dir} (step ${report.model.step}, ${report.model.params.toLocaleString('en-US')} params)` +
      (c ? ` on ${c.dir} split ${c.split}, ${c.traces} traces` : ''),
  );
  if (c && report.model.trainedOn && report.model.trainedOn !== c.id) {
    out.push(`note: the model was trained on another corpus (id ${report.model.trainedOn}; this one is ${c.id})`);
  }
  const tf = report.teacherForced;
  if (tf) {
    out.push('', `teacher-forced, ${tf.model.frames} frames, ${tf.model.variables} variables` +
      (report.coverage.framesSkipped
        ? ` (${report.coverage.framesSkipped} more did not fit the model's ${String(report.model.config.blockSize)}-token context)`
        : ''));
    const rows = [['', ...PREDICTORS.map((p) => PREDICTOR_LABELS[p])]];
    for (const [label, key] of STATE_ROWS) {
      rows.push([label, fmt(tf.model[key]), ...BASELINES.map((b) => (key === 'undecodableShare' ? '-' : fmt(tf.baselines[b][key])))]);
    }
    out.push(table(rows));
  }
  const r = report.rollout;
  if (r) {
    out.push('', `rollout, ${r.summary.traces} traces`);
    out.push(
      table([
        ['trace exact match', fmt(r.summary.traceExactMatch)],
        ['mean first divergence (frame)', r.summary.meanFirstDivergence === null ? 'n/a' : r.summary.meanFirstDivergence.toFixed(1)],
        ['mean share of frames before divergence', fmt(r.summary.meanMatchedShare)],
      ]),
    );
  }
  for (const o of [report.output, report.rolloutOutput]) {
    if (!o) continue;
    out.push('', `output prediction (${o.mode}), ${o.model.programs} programs`);
    const rows = [['', 'model', ...(o.baseline ? ['most-frequent-output'] : [])]];
    rows.push(['exact', fmt(o.model.exactAccuracy), ...(o.baseline ? [fmt(o.baseline.exactAccuracy)] : [])]);
    rows.push(['Python ==', fmt(o.model.equalAccuracy), ...(o.baseline ? [fmt(o.baseline.equalAccuracy)] : [])]);
    rows.push(['no return value', fmt(o.model.missingShare), ...(o.baseline ? ['-'] : [])]);
    out.push(table(rows));
  }
  if (report.tasks) out.push('', ...taskSummaryLines(report.tasks));
  if (report.flags.length > 0) out.push('', ...report.flags.map((f) => `! ${f}`));
  return `${out.join('\n')}\n`;
}

/** The rows of the task table: task, examples, metric, model, baseline (and its name). */
function taskRows(section: TasksSection): string[][] {
  const rows: string[][] = [];
  for (const [task, f] of Object.entries(section.tasks)) {
    rows.push([task, String(f.examples), f.metric, fmt(f.model), fmt(f.baseline.value), f.baseline.name]);
    if (f.lineAccuracy) rows.push(['', '', 'line accuracy', fmt(f.lineAccuracy.model), fmt(f.lineAccuracy.baseline), '']);
    if (f.exactText) rows.push(['', '', 'input text identical', fmt(f.exactText.model), fmt(f.exactText.baseline), '']);
  }
  const ic = section.incrementalConsistency;
  if (ic) rows.push(['consistency', String(ic.chains), 'incremental consistency', fmt(ic.model), fmt(ic.baseline), 'the baselines above']);
  return rows;
}

function taskSummaryLines(section: TasksSection): string[] {
  const head = `tasks${section.skipped ? ` (${section.skipped} examples did not fit the model's context)` : ''}`;
  return [head, table([['task', 'examples', 'figure', 'model', 'baseline', ''], ...taskRows(section)])];
}

/** One section per task: its figure beside the baseline, then Incremental Consistency. */
function tasksHtml(section: TasksSection): string {
  const parts = Object.entries(section.tasks).map(([task, f]) => {
    const rows = [`<tr><th></th><th>model</th><th>${esc(f.baseline.name)}</th></tr>`];
    rows.push(`<tr><td>${esc(f.metric)}</td><td class="num">${fmt(f.model)}</td><td class="num">${fmt(f.baseline.value)}</td></tr>`);
    if (f.lineAccuracy) rows.push(`<tr><td>line accuracy</td><td class="num">${fmt(f.lineAccuracy.model)}</td><td class="num">${fmt(f.lineAccuracy.baseline)}</td></tr>`);
    if (f.exactText) rows.push(`<tr><td>input text identical to the true one</td><td class="num">${fmt(f.exactText.model)}</td><td class="num">${fmt(f.exactText.baseline)}</td></tr>`);
    return `<section class="task" id="task-${esc(task)}"><h3>${esc(task)} (${f.examples} examples)</h3><table class="summary">${rows.join('')}</table></section>`;
  });
  const ic = section.incrementalConsistency;
  if (ic) {
    parts.push(
      `<section class="task" id="task-consistency"><h3>Incremental Consistency (${ic.chains} chains: coverage, value, next line, output)</h3>` +
        `<table class="summary"><tr><th></th><th>model</th><th>baselines</th></tr>` +
        `<tr><td>mean correct share before the first mistake</td><td class="num">${fmt(ic.model)}</td><td class="num">${fmt(ic.baseline)}</td></tr>` +
        `<tr><td>whole chain correct</td><td class="num">${fmt(ic.modelAllCorrect)}</td><td></td></tr></table></section>`,
    );
  }
  const note = section.skipped ? `<p class="legend">${section.skipped} examples did not fit the model's context.</p>` : '';
  return `<h2>Tasks</h2>${note}${parts.join('')}`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const COLORS: Record<Predictor, string> = { model: '#2b6cb0', copyPrevious: '#a0aec0', mostFrequent: '#dd9b54' };

/** One grouped horizontal bar chart (inline SVG): a row per key, a bar per predictor. */
function barChart(title: string, rows: readonly BreakdownRow[], metric: 'variableAccuracy' | 'stateExactMatch'): string {
  const shown = rows.filter((r) => PREDICTORS.some((p) => r.figures[p][metric] !== null)).slice(0, 12);
  if (shown.length === 0) return '';
  const labelW = 150;
  const barW = 300;
  const barH = 11;
  const groupH = PREDICTORS.length * barH + 10;
  const height = shown.length * groupH + 10;
  const parts: string[] = [];
  shown.forEach((row, i) => {
    const y0 = 5 + i * groupH;
    const n = metric === 'stateExactMatch' ? `${row.frames} frames` : `${row.variables} vars`;
    parts.push(`<text x="0" y="${y0 + 12}" class="lbl">${esc(row.key.slice(0, 22))}</text>`);
    parts.push(`<text x="0" y="${y0 + 25}" class="n">${n}</text>`);
    PREDICTORS.forEach((p, j) => {
      const v = row.figures[p][metric];
      const w = v === null ? 0 : Math.max(1, Math.round(v * barW));
      const y = y0 + j * barH;
      parts.push(
        `<rect x="${labelW}" y="${y}" width="${w}" height="${barH - 2}" fill="${COLORS[p]}"><title>${esc(PREDICTOR_LABELS[p])}: ${fmt(v)}</title></rect>`,
      );
      parts.push(`<text x="${labelW + w + 4}" y="${y + barH - 3}" class="v">${fmt(v)}</text>`);
    });
  });
  return (
    `<figure class="chart"><figcaption>${esc(title)}</figcaption>` +
    `<svg role="img" width="${labelW + barW + 60}" height="${height}" viewBox="0 0 ${labelW + barW + 60} ${height}">${parts.join('')}</svg></figure>`
  );
}

function summaryTableHtml(report: EvalReport): string {
  const tf = report.teacherForced;
  const rows: string[] = [];
  if (tf) {
    rows.push(`<tr><th></th>${PREDICTORS.map((p) => `<th>${esc(PREDICTOR_LABELS[p])}</th>`).join('')}</tr>`);
    for (const [label, key] of STATE_ROWS) {
      const cells = [fmt(tf.model[key]), ...BASELINES.map((b) => (key === 'undecodableShare' ? '–' : fmt(tf.baselines[b][key])))];
      rows.push(`<tr><td>${label}</td>${cells.map((c) => `<td class="num">${c}</td>`).join('')}</tr>`);
    }
  }
  const r = report.rollout;
  if (r) {
    rows.push(`<tr><th colspan="4">rollout (${r.summary.traces} traces)</th></tr>`);
    rows.push(`<tr><td>trace exact match</td><td class="num">${fmt(r.summary.traceExactMatch)}</td></tr>`);
    rows.push(`<tr><td>mean first divergence (frame)</td><td class="num">${r.summary.meanFirstDivergence?.toFixed(1) ?? 'n/a'}</td></tr>`);
  }
  for (const o of [report.output, report.rolloutOutput]) {
    if (!o) continue;
    rows.push(
      `<tr><th>output prediction, ${o.mode} (${o.model.programs} programs)</th><th>model</th>` +
        `${o.baseline ? '<th>most-frequent-output</th>' : ''}</tr>`,
    );
    rows.push(`<tr><td>exact</td><td class="num">${fmt(o.model.exactAccuracy)}</td><td class="num">${o.baseline ? fmt(o.baseline.exactAccuracy) : ''}</td></tr>`);
    rows.push(`<tr><td>Python ==</td><td class="num">${fmt(o.model.equalAccuracy)}</td><td class="num">${o.baseline ? fmt(o.baseline.equalAccuracy) : ''}</td></tr>`);
  }
  return `<table class="summary">${rows.join('')}</table>`;
}

/** JSON inside a <script> element: `<` escaped so no `</script>` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#1a202c;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #e2e8f0}
.meta{color:#4a5568;font-size:.9em}
table.summary{border-collapse:collapse}table.summary td,table.summary th{padding:3px 10px;border-bottom:1px solid #edf2f7;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.flags{background:#fff5f5;border:1px solid #feb2b2;padding:.5em 1em;border-radius:4px}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}figure.chart{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#2d3748}svg text.n{fill:#718096;font-size:10px}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
#viewer{display:grid;grid-template-columns:1fr 1fr;gap:1em;align-items:start}
#source{font:12.5px/1.5 ui-monospace,monospace;background:#f7fafc;border:1px solid #e2e8f0;margin:0;padding:.4em 0;overflow:auto}
#source div{white-space:pre;padding:0 .6em}#source .ln{display:inline-block;width:2.5em;color:#a0aec0;user-select:none}
#source div.current{background:#fefcbf;outline:1px solid #ecc94b}
#locals{border-collapse:collapse;width:100%;font:12.5px ui-monospace,monospace}
#locals td,#locals th{border:1px solid #e2e8f0;padding:2px 6px;text-align:left;vertical-align:top;word-break:break-all}
#locals tr.mismatch td{background:#fed7d7}#locals tr.mismatch td.mark{color:#c53030;font-weight:700}
#locals tr.match td.mark{color:#2f855a}
.controls{margin:.5em 0;display:flex;gap:.5em;align-items:center;flex-wrap:wrap}
#stepinfo{font-family:ui-monospace,monospace}.undecodable{color:#c53030;font-family:ui-monospace,monospace;white-space:pre-wrap}
`;

/** The viewer's script; reads the JSON data island and renders one step at a time. */
const VIEWER_JS = `
(function () {
  var traces = JSON.parse(document.getElementById('viewer-data').textContent);
  var pick = document.getElementById('trace');
  var source = document.getElementById('source');
  var locals = document.getElementById('locals');
  var info = document.getElementById('stepinfo');
  var note = document.getElementById('note');
  var t = 0, s = 0;
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  traces.forEach(function (tr, i) {
    var bad = tr.steps.filter(function (x) { return x.mismatches.length > 0 || x.undecodable !== null; }).length;
    var o = el('option', '', tr.id + (tr.origin ? ' (' + tr.origin + ')' : '') + (bad ? ' - ' + bad + ' steps wrong' : ''));
    o.value = String(i); pick.appendChild(o);
  });
  function showSource() {
    source.textContent = '';
    traces[t].source.replace(/\\n$/, '').split('\\n').forEach(function (line, i) {
      var d = el('div'); d.dataset.line = String(i + 1);
      d.appendChild(el('span', 'ln', String(i + 1))); d.appendChild(document.createTextNode(line)); source.appendChild(d);
    });
    if (traces[t].entry) { var d = el('div'); d.appendChild(el('span', 'ln', '>')); d.appendChild(document.createTextNode(traces[t].entry)); source.appendChild(d); }
  }
  function show() {
    var tr = traces[t], st = tr.steps[s];
    info.textContent = 'step ' + (s + 1) + ' / ' + tr.steps.length + ': ' + st.event + ' at line ' + st.line + ' of ' + st.func + (st.depth ? ' (depth ' + st.depth + ')' : '');
    Array.prototype.forEach.call(source.children, function (d) { d.classList.toggle('current', d.dataset.line === String(st.line)); });
    locals.textContent = '';
    var head = el('tr'); ['', 'variable', 'true', 'predicted'].forEach(function (h) { head.appendChild(el('th', '', h)); }); locals.appendChild(head);
    note.textContent = '';
    if (st.truth === null) {
      note.textContent = st.event === 'return' ? 'returns ' + st.arg : st.event === 'exception' ? 'raises ' + st.arg : '';
      return;
    }
    var evaluated = st.predicted !== null || st.undecodable !== null;
    if (!evaluated) note.textContent = 'not evaluated (outside the model context)';
    if (st.undecodable !== null) { note.appendChild(el('div', 'undecodable', 'undecodable output: ' + st.undecodable)); }
    var names = Object.keys(st.truth);
    if (st.predicted) Object.keys(st.predicted).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); });
    names.forEach(function (n) {
      var wrong = st.mismatches.indexOf(n) >= 0;
      var row = el('tr', evaluated ? (wrong || st.undecodable !== null ? 'mismatch' : 'match') : '');
      row.appendChild(el('td', 'mark', evaluated ? (wrong || st.undecodable !== null ? '\\u2717' : '\\u2713') : ''));
      row.appendChild(el('td', '', n));
      row.appendChild(el('td', '', n in st.truth ? st.truth[n] : '(absent)'));
      row.appendChild(el('td', '', st.predicted && n in st.predicted ? st.predicted[n] : evaluated ? '(missing)' : ''));
      locals.appendChild(row);
    });
    document.getElementById('prev').disabled = s === 0;
    document.getElementById('next').disabled = s === tr.steps.length - 1;
  }
  function go(d) { var n = traces[t].steps.length; s = Math.max(0, Math.min(n - 1, s + d)); show(); }
  document.getElementById('prev').addEventListener('click', function () { go(-1); });
  document.getElementById('next').addEventListener('click', function () { go(1); });
  document.getElementById('first').addEventListener('click', function () { s = 0; show(); });
  document.getElementById('nextwrong').addEventListener('click', function () {
    var st = traces[t].steps;
    for (var i = s + 1; i < st.length; i++) if (st[i].mismatches.length > 0 || st[i].undecodable !== null) { s = i; break; }
    show();
  });
  document.addEventListener('keydown', function (e) { if (e.key === 'ArrowRight') go(1); if (e.key === 'ArrowLeft') go(-1); });
  pick.addEventListener('change', function () { t = Number(pick.value); s = 0; showSource(); show(); });
  if (traces.length > 0) { showSource(); show(); }
  else { document.getElementById('viewer-section').hidden = true; }
})();
`;

/** The self-contained HTML report. */
export function renderHtml(report: EvalReport, examples: readonly ViewerTrace[]): string {
  const c = report.corpus;
  const meta = [
    `model <code>${esc(report.model.dir)}</code> (id ${esc(report.model.id)}, step ${report.model.step}, ` +
      `${report.model.params.toLocaleString('en-US')} params${report.model.diff ? (report.model.changedOnly ? ', diff encoding (changed locals only)' : ', diff encoding') : ''}` +
      `${report.model.operands ? ', operands beside lines' : ''}` +
      `${report.model.trainedOn ? `, trained on corpus ${esc(report.model.trainedOn)}` : ''})`,
    c ? `corpus <code>${esc(c.dir)}</code> (id ${esc(c.id)}), split <b>${esc(c.split)}</b>, ${c.traces} traces` : '',
    `execwm ${esc(report.execwm)}, ${esc(report.createdAt)}, backend ${esc(report.timing.backend)}, ${report.timing.seconds.toFixed(1)} s`,
  ].filter(Boolean);
  const flags = report.flags.length
    ? `<div class="flags"><b>Does not beat a baseline:</b><ul>${report.flags.map((f) => `<li>${esc(f)}</li>`).join('')}</ul></div>`
    : '';
  const tf = report.teacherForced;
  const legend = `<p class="legend">${PREDICTORS.map((p) => `<span><i style="background:${COLORS[p]}"></i>${esc(PREDICTOR_LABELS[p])}</span>`).join('')}</p>`;
  const charts = tf
    ? DIMENSIONS.map((d) => barChart(`variable accuracy by ${DIMENSION_LABELS[d]}`, tf.breakdowns[d], 'variableAccuracy')).join('') +
      (['event', 'difficulty', 'position'] as const)
        .map((d) => barChart(`state exact match by ${DIMENSION_LABELS[d]}`, tf.breakdowns[d], 'stateExactMatch'))
        .join('')
    : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>execwm eval report</title><style>${CSS}</style></head>
<body>
<h1>execwm evaluation</h1>
<p class="meta">${meta.join('<br>')}</p>
${flags}
<h2>Summary</h2>
${summaryTableHtml(report)}
${tf ? `<h2>Breakdowns</h2>${legend}<div class="charts">${charts}</div>` : ''}
${report.tasks ? tasksHtml(report.tasks) : ''}
<section id="viewer-section"><h2>Trace viewer (teacher-forced)</h2>
<div class="controls"><select id="trace" aria-label="trace"></select>
<button id="first" type="button">first</button><button id="prev" type="button">&#x25c0; back</button>
<button id="next" type="button">forward &#x25b6;</button><button id="nextwrong" type="button">next mistake</button>
<span id="stepinfo"></span></div>
<div id="viewer"><pre id="source"></pre><div><table id="locals"></table><div id="note"></div></div></div>
</section>
<script type="application/json" id="viewer-data">${scriptJson(examples)}</script>
<script>${VIEWER_JS}</script>
</body></html>
`;
}
