// Hand-drawn SVG charts (no chart library: the bundle stays small). Every chart has a legend,
// a title and a text summary for screen readers.
import type { ReactNode } from "react";

export const COLORS = [
  "var(--c1)",
  "var(--c2)",
  "var(--c3)",
  "var(--c4)",
  "var(--c5)",
  "var(--c6)",
  "var(--c7)",
  "var(--c8)",
  "var(--c9)",
];

/**
 * The colour of the i-th series: the palette, then hues spread by the golden angle at the
 * palette's lightness, so that no two series share one however many versions a chart shows.
 */
export function seriesColor(i: number): string {
  if (i < COLORS.length) return COLORS[i]!;
  return `hsl(${Math.round((i * 137.508) % 360)} 70% 32%)`;
}

export interface Series {
  name: string;
  color: string;
  /** [x, y]; y null leaves a gap. */
  points: [number, number | null][];
  dashed?: boolean;
  /** Drawn as a step line (set weights). */
  step?: boolean;
}

export interface Threshold {
  label: string;
  y: number;
}

export interface Band {
  name: string;
  color: string;
  /** [x, lower, upper] */
  points: [number, number, number][];
}

const W = 560;
const H = 200;
const PAD = { l: 52, r: 12, t: 10, b: 24 };
/**
 * Width of one character of an axis label (11px system-ui, `.chart text`), a little over the
 * widest digit: the left margin grows with the longest label, so "10000 ms" is not clipped.
 */
const LABEL_CHAR_W = 7.2;

function niceTicks(min: number, max: number, n = 4): number[] {
  if (!(max > min)) return [min];
  const span = max - min;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step)
    out.push(+v.toFixed(10));
  return out;
}

function clock(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:${String(d.getSeconds()).padStart(2, "0")}`;
}

export function LineChart(props: {
  title: string;
  series: Series[];
  thresholds?: Threshold[];
  bands?: Band[];
  format: (y: number) => string;
  /** x is clock ms. */
  yMin?: number;
  yMax?: number;
  /** Points before it are not drawn (the chart starts where the data does). */
  xMin?: number;
  empty?: string;
  children?: ReactNode;
}) {
  const { thresholds: allThresholds = [], format } = props;
  const from = props.xMin ?? Number.NEGATIVE_INFINITY;
  const series = props.series.map((s) => ({ ...s, points: s.points.filter(([x]) => x >= from) }));
  const bands = (props.bands ?? []).map((b) => ({
    ...b,
    points: b.points.filter(([x]) => x >= from),
  }));
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of series)
    for (const [x, y] of s.points) {
      xs.push(x);
      if (y !== null && Number.isFinite(y)) ys.push(y);
    }
  for (const b of bands)
    for (const [x, lo, hi] of b.points) {
      xs.push(x);
      ys.push(lo, hi);
    }
  // A threshold far above the data would flatten it: it is named in the legend instead.
  const dataMax = ys.length ? Math.max(...ys) : 0;
  const offScale = (t: Threshold) =>
    props.yMax === undefined && ys.length > 0 && dataMax > 0 && t.y > dataMax * 5;
  const thresholds = allThresholds.filter((t) => !offScale(t));
  const above = allThresholds.filter(offScale);
  for (const t of thresholds) ys.push(t.y);
  const hasData = ys.length > 0 && xs.length > 0;
  const x0 = hasData ? Math.min(...xs) : 0;
  const x1 = hasData ? Math.max(...xs) : 1;
  let y0 = props.yMin ?? (hasData ? Math.min(...ys) : 0);
  let y1 = props.yMax ?? (hasData ? Math.max(...ys) : 1);
  if (props.yMin === undefined && y0 > 0) y0 = 0;
  if (y1 === y0) y1 = y0 + (Math.abs(y0) || 1);
  y1 += (y1 - y0) * 0.05;
  const yt = niceTicks(y0, y1);
  const yLabels = yt.map(format);
  const left = Math.max(
    PAD.l,
    Math.ceil(Math.max(0, ...yLabels.map((l) => l.length)) * LABEL_CHAR_W) + 10,
  );
  const sx = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * (W - left - PAD.r);
  const sy = (y: number) => H - PAD.b - ((y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  const path = (s: Series) => {
    let d = "";
    let pen = false;
    let prevY = 0;
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y)) {
        pen = false;
        continue;
      }
      if (!pen) d += `M${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      else if (s.step) d += `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}`;
      else d += `L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = true;
      prevY = y;
    }
    if (s.step && pen) d += `H${sx(x1).toFixed(1)}V${sy(prevY).toFixed(1)}`;
    return d;
  };
  const xt = hasData ? niceTicks(x0, x1, 4) : [];
  const summary = series
    .map((s) => {
      const last = [...s.points].reverse().find((p) => p[1] !== null);
      return `${s.name}: ${last ? format(last[1] as number) : "no data"}`;
    })
    .join("; ");
  return (
    <figure className="panel" style={{ margin: 0 }}>
      <figcaption>
        <h3>{props.title}</h3>
      </figcaption>
      {hasData ? (
        <svg
          className="chart"
          viewBox={`0 0 ${W} ${H}`}
          role="img"
          aria-label={`${props.title}. Latest: ${summary}`}
        >
          {yt.map((t, i) => (
            <g key={`y${t}`}>
              <line className="grid" x1={left} x2={W - PAD.r} y1={sy(t)} y2={sy(t)} />
              <text x={left - 6} y={sy(t) + 4} textAnchor="end">
                {yLabels[i]}
              </text>
            </g>
          ))}
          {xt.map((t) => (
            <text
              key={`x${t}`}
              x={sx(t)}
              y={H - 6}
              textAnchor={sx(t) > W - PAD.r - 30 ? "end" : sx(t) < left + 30 ? "start" : "middle"}
            >
              {clock(t)}
            </text>
          ))}
          <line className="axis" x1={left} x2={left} y1={PAD.t} y2={H - PAD.b} />
          <line className="axis" x1={left} x2={W - PAD.r} y1={H - PAD.b} y2={H - PAD.b} />
          {bands.map((b) => (
            <path
              key={`b${b.name}`}
              d={`${b.points.map(([x, , hi], i) => `${i ? "L" : "M"}${sx(x)},${sy(hi)}`).join("")}${[
                ...b.points,
              ]
                .reverse()
                .map(([x, lo]) => `L${sx(x)},${sy(lo)}`)
                .join("")}Z`}
              fill={b.color}
              opacity={0.18}
            />
          ))}
          {thresholds.map((t) => (
            <line
              key={`t${t.label}`}
              className="threshold"
              x1={left}
              x2={W - PAD.r}
              y1={sy(t.y)}
              y2={sy(t.y)}
            />
          ))}
          {series.map((s) => (
            <path
              key={s.name}
              d={path(s)}
              fill="none"
              stroke={s.color}
              strokeWidth={2}
              strokeDasharray={s.dashed ? "6 4" : undefined}
            />
          ))}
        </svg>
      ) : (
        <p className="muted small">{props.empty ?? "No data yet."}</p>
      )}
      <div className="legend" aria-hidden={!hasData}>
        {series.map((s) => (
          <span className="key" key={s.name}>
            <span
              className="sw"
              style={{
                background: s.dashed ? "none" : s.color,
                borderTop: s.dashed ? `2px dashed ${s.color}` : undefined,
                height: s.dashed ? 0 : undefined,
              }}
            />
            {s.name}
          </span>
        ))}
        {bands.map((b) => (
          <span className="key" key={`b${b.name}`}>
            <span className="sw" style={{ background: b.color, opacity: 0.35, height: 9 }} />
            {b.name}
          </span>
        ))}
        {thresholds.map((t) => (
          <span className="key" key={`t${t.label}`}>
            <span className="sw dash" />
            {t.label}
          </span>
        ))}
        {above.map((t) => (
          <span className="key muted" key={`a${t.label}`}>
            <span className="sw dash" />
            {t.label} (above the chart)
          </span>
        ))}
      </div>
      {props.children}
    </figure>
  );
}

/** An interval drawn as a bar around zero: the lift of an experiment metric. */
export function IntervalBar(props: {
  lower: number;
  upper: number;
  point: number;
  /** Half-width of the axis (symmetric around 0). */
  scale: number;
  label: string;
}) {
  const w = 180;
  const h = 22;
  const s = props.scale || 1;
  const x = (v: number) => Math.max(2, Math.min(w - 2, w / 2 + (v / s) * (w / 2 - 4)));
  const color = props.lower > 0 ? "var(--ok)" : props.upper < 0 ? "var(--bad)" : "var(--muted)";
  return (
    <svg width={w} height={h} role="img" aria-label={props.label} className="interval">
      <line x1={w / 2} x2={w / 2} y1={2} y2={h - 2} stroke="#9ca3af" />
      <line
        x1={x(props.lower)}
        x2={x(props.upper)}
        y1={h / 2}
        y2={h / 2}
        stroke={color}
        strokeWidth={6}
        strokeLinecap="round"
        opacity={0.55}
      />
      <circle cx={x(props.point)} cy={h / 2} r={4} fill={color} />
    </svg>
  );
}
