// The three KPI charts (uPlot, vendored) and, for each, the same numbers as a table: a canvas
// says nothing to a screen reader, and the table is also what a keyboard user can read exactly.

import { format, formatStamp } from "./format.js";

const COLORS = ["#0b5cad", "#17652f", "#a1181d"];
const HEIGHT = 230;
// Axis steps that read well in each unit: whole conversations, round durations, whole percents.
const STEPS = {
  count: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
  seconds: [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200],
  fraction: [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5],
};

const CHARTS = [
  {
    id: "chart-counts",
    kind: "count",
    series: [
      ["incoming", "Incoming"],
      ["engaged", "Engaged"],
      ["abandoned", "Abandoned"],
    ],
  },
  {
    id: "chart-times",
    kind: "seconds",
    series: [
      ["asaSeconds", "Speed to answer"],
      ["ahtSeconds", "Handle time"],
    ],
  },
  {
    id: "chart-rates",
    kind: "fraction",
    series: [
      ["serviceLevel", "Service level"],
      ["abandonRate", "Abandon rate"],
    ],
  },
];

export class Charts {
  constructor(root) {
    this.root = root;
    this.plots = new Map();
    this.resizer = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const plot = this.plots.get(entry.target);
        const width = Math.floor(entry.contentRect.width);
        if (plot && width > 0 && width !== plot.width) {
          plot.setSize({ width, height: HEIGHT });
        }
      }
    });
  }

  render(series) {
    const rows = series ?? [];
    const xs = rows.map((bucket) => Date.parse(bucket.start) / 1000);
    for (const chart of CHARTS) {
      const figure = this.root.querySelector(`#${chart.id}`);
      this.table(figure.querySelector("table"), chart, rows);
      this.plot(figure.querySelector(".plot"), chart, [
        xs,
        ...chart.series.map(([name]) => rows.map((bucket) => bucket[name] ?? null)),
      ]);
    }
  }

  plot(element, chart, data) {
    this.plots.get(element)?.destroy();
    this.plots.delete(element);
    const uPlot = globalThis.uPlot;
    if (!uPlot) {
      return; // the tables still carry every number
    }
    const show = (value) => format(chart.kind, value);
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 200),
        height: HEIGHT,
        series: [
          { value: (u, v) => (v === null ? "—" : formatStamp(v * 1000)) },
          ...chart.series.map(([, label], index) => ({
            label,
            stroke: COLORS[index],
            width: 2,
            spanGaps: false,
            value: (u, v) => show(v),
          })),
        ],
        axes: [{}, { values: (u, splits) => splits.map(show), size: 64, incrs: STEPS[chart.kind] }],
        scales: { y: { range: (u, min, max) => [0, Math.max(max ?? 0, 1)] } },
        cursor: { drag: { x: false, y: false } },
      },
      data,
      element,
    );
    this.plots.set(element, plot);
    this.resizer.observe(element);
  }

  table(table, chart, rows) {
    const head = document.createElement("thead");
    const headRow = head.insertRow();
    for (const label of ["Interval start", ...chart.series.map(([, name]) => name)]) {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = label;
      headRow.append(cell);
    }
    const body = document.createElement("tbody");
    for (const bucket of rows) {
      const row = body.insertRow();
      const start = document.createElement("th");
      start.scope = "row";
      start.textContent = formatStamp(bucket.start);
      row.append(start);
      for (const [name] of chart.series) {
        row.insertCell().textContent = format(chart.kind, bucket[name]);
      }
    }
    table.replaceChildren(head, body);
  }
}
