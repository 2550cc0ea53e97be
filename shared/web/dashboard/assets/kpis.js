// KPIs over a chosen range: the totals, the charts, and a table per queue and per agent. One
// `GET /api/supervisor/kpis` for the whole service, then one per queue and per agent (at most
// BREAKDOWN_LIMIT of each, PARALLEL at a time), so the calls stay bounded whatever the size.
// The range is whole local days: `from` is the first day's local midnight and `to` the midnight
// after the last day, both sent as RFC 3339 UTC instants (half-open, as the API counts buckets).

import { Charts } from "./charts.js";
import { DASH, KPIS, formatKpi } from "./format.js";

const BREAKDOWN_LIMIT = 25;
const PARALLEL = 4;
const INTERVAL_NAMES = { "15m": "15 minutes", "1h": "hour", "1d": "day" };

const QUEUE_COLUMNS = [
  "incoming",
  "engaged",
  "abandoned",
  "asaSeconds",
  "serviceLevel",
  "abandonRate",
  "ahtSeconds",
  "csat",
];
const AGENT_COLUMNS = ["engaged", "ahtSeconds", "firstResponseSeconds", "transferRate", "utilization", "csat"];
const LABELS = Object.fromEntries(KPIS.map(([name, label]) => [name, label]));

export function localDay(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function midnight(day, plusDays = 0) {
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date + plusDays);
}

export class KpiView {
  constructor({ root, getJson, live, onError }) {
    this.root = root;
    this.getJson = getJson;
    this.live = live;
    this.onError = onError;
    this.form = root.querySelector("#range-form");
    this.charts = new Charts(root);
    this.generation = 0;
    const today = localDay();
    this.form.elements.from.value = today;
    this.form.elements.to.value = today;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.show();
    });
    live.onAgent((agent) => this.updateAgent(agent));
  }

  range() {
    const { from, to, interval } = this.form.elements;
    if (!from.value || !to.value) {
      return { problem: "Choose both days." };
    }
    if (to.value < from.value) {
      return { problem: "The last day comes before the first." };
    }
    return {
      from: midnight(from.value).toISOString(),
      to: midnight(to.value, 1).toISOString(),
      interval: interval.value,
      label: `${from.value} to ${to.value}, by ${INTERVAL_NAMES[interval.value]}`,
    };
  }

  async show() {
    const range = this.range();
    if (range.problem) {
      this.onError(range.problem);
      this.form.elements.from.focus();
      return;
    }
    const generation = ++this.generation;
    const params = { from: range.from, to: range.to, interval: range.interval };
    const whole = await this.getJson("supervisor/kpis", params);
    if (generation !== this.generation) {
      return;
    }
    this.root.querySelector("#kpi-range").textContent = range.label;
    this.renderTotals(whole.totals ?? {});
    this.charts.render(whole.series ?? []);
    const queues = [...this.live.queues.values()];
    const agents = [...this.live.agents.values()];
    const [queueTotals, agentTotals] = await Promise.all([
      this.breakdown(queues.slice(0, BREAKDOWN_LIMIT).map((q) => ({ ...params, queueId: q.queueId }))),
      this.breakdown(agents.slice(0, BREAKDOWN_LIMIT).map((a) => ({ ...params, agentId: a.agentId }))),
    ]);
    if (generation !== this.generation) {
      return;
    }
    this.renderQueues(queues.slice(0, BREAKDOWN_LIMIT), queueTotals);
    this.renderAgents(agents.slice(0, BREAKDOWN_LIMIT), agentTotals);
    this.note("#queues-note", queues.length, "queues");
    this.note("#agents-note", agents.length, "agents");
  }

  async breakdown(calls) {
    const results = new Array(calls.length).fill(null);
    let next = 0;
    const worker = async () => {
      while (next < calls.length) {
        const index = next++;
        results[index] = (await this.getJson("supervisor/kpis", calls[index])).totals ?? {};
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, calls.length) }, worker));
    return results;
  }

  renderTotals(totals) {
    const list = this.root.querySelector("#totals");
    list.replaceChildren(
      ...KPIS.map(([name, label]) => {
        const item = document.createElement("div");
        const term = document.createElement("dt");
        term.textContent = label;
        const value = document.createElement("dd");
        value.dataset.kpi = name;
        value.textContent = formatKpi(name, totals[name]);
        item.append(term, value);
        return item;
      }),
    );
  }

  renderQueues(queues, totals) {
    const table = this.root.querySelector("#queue-table");
    const rows = queues.map((queue, index) => [
      { header: queue.name ?? queue.queueId, id: queue.queueId },
      ...QUEUE_COLUMNS.map((name) => ({ kpi: name, text: formatKpi(name, totals[index][name]) })),
    ]);
    fillTable(table, ["Queue", ...QUEUE_COLUMNS.map((n) => LABELS[n])], rows, "queueId");
  }

  renderAgents(agents, totals) {
    const table = this.root.querySelector("#agent-table");
    const rows = agents.map((agent, index) => [
      { header: agent.agentId, id: agent.agentId },
      { live: "presence", text: agent.presence ?? DASH },
      { live: "load", text: loadText(agent) },
      ...AGENT_COLUMNS.map((name) => ({ kpi: name, text: formatKpi(name, totals[index][name]) })),
    ]);
    const columns = ["Agent", "Presence", "Load / capacity", ...AGENT_COLUMNS.map((n) => LABELS[n])];
    fillTable(table, columns, rows, "agentId");
  }

  updateAgent(agent) {
    const row = this.root.querySelector(`#agent-table tr[data-agent-id="${CSS.escape(agent.agentId)}"]`);
    if (!row) {
      return;
    }
    row.querySelector('[data-live="presence"]').textContent = agent.presence ?? DASH;
    row.querySelector('[data-live="load"]').textContent = loadText(agent);
  }

  note(selector, count, noun) {
    const text = count > BREAKDOWN_LIMIT ? `The first ${BREAKDOWN_LIMIT} of ${count} ${noun}.` : "";
    this.root.querySelector(selector).textContent = text;
  }
}

function loadText(agent) {
  const known = (v) => v !== null && v !== undefined;
  return known(agent.load) && known(agent.capacity) ? `${agent.load} / ${agent.capacity}` : DASH;
}

function fillTable(table, columns, rows, idName) {
  const head = document.createElement("thead");
  const headRow = head.insertRow();
  for (const label of columns) {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = label;
    headRow.append(cell);
  }
  const body = document.createElement("tbody");
  for (const [first, ...cells] of rows) {
    const row = body.insertRow();
    row.dataset[idName] = first.id;
    const header = document.createElement("th");
    header.scope = "row";
    header.textContent = first.header;
    row.append(header);
    for (const cell of cells) {
      const td = row.insertCell();
      td.textContent = cell.text;
      if (cell.kpi) {
        td.dataset.kpi = cell.kpi;
      }
      if (cell.live) {
        td.dataset.live = cell.live;
      }
    }
  }
  if (rows.length === 0) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = columns.length;
    cell.textContent = "None yet.";
  }
  table.replaceChildren(head, body);
}
