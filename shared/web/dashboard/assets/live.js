// Live state: the queue tiles and the agents' presence, from `GET /api/supervisor/kpis/live`
// and then from hub deltas (docs/ARCHITECTURE.md, "Dashboard"):
//   {"kind": "queue", "queueId", "waiting", "longestWaitSeconds", "active", "agentsAvailable",
//    "serviceLevelToday", "asOf"}
//   {"kind": "agent", "agentId", "presence", "load", "capacity", "asOf"}
// A field left out keeps its value; a delta older than what is shown is ignored; a queue the
// page does not know asks for a re-read. Tiles are updated in place (text only), so nothing moves.

import { DASH, format, formatTime } from "./format.js";

const QUEUE_FIELDS = [
  ["waiting", "Waiting", "count"],
  ["longestWaitSeconds", "Longest wait", "seconds"],
  ["active", "Active", "count"],
  ["agentsAvailable", "Agents available", "count"],
  ["serviceLevelToday", "Service level today", "fraction"],
];
const AGENT_FIELDS = ["presence", "load", "capacity"];

export class LiveState {
  constructor({ tiles, asOf }) {
    this.tilesElement = tiles;
    this.asOfElement = asOf;
    this.queues = new Map();
    this.agents = new Map();
    this.agentListeners = [];
  }

  // A whole snapshot from /kpis/live: the tiles are rebuilt.
  load(live) {
    const stamp = live.asOf ?? null;
    this.queues = new Map((live.queues ?? []).map((q) => [q.queueId, { ...q, asOf: stamp }]));
    this.agents = new Map((live.agents ?? []).map((a) => [a.agentId, { ...a, asOf: stamp }]));
    this.tilesElement.replaceChildren(...[...this.queues.values()].map((q) => tile(q)));
    this.showAsOf(stamp);
    for (const agent of this.agents.values()) {
      this.notifyAgent(agent);
    }
  }

  // A hub delta. Returns "reload" when the page should re-read /kpis/live.
  apply(delta) {
    if (delta.kind === "queue" && typeof delta.queueId === "string") {
      const current = this.queues.get(delta.queueId);
      if (!current) {
        return "reload";
      }
      if (isOlder(delta.asOf, current.asOf)) {
        return "ignored";
      }
      Object.assign(current, pick(delta, [...QUEUE_FIELDS.map(([name]) => name), "name", "asOf"]));
      updateTile(this.tilesElement, current);
      this.showAsOf(delta.asOf);
      return "applied";
    }
    if (delta.kind === "agent" && typeof delta.agentId === "string") {
      const current = this.agents.get(delta.agentId) ?? { agentId: delta.agentId, asOf: null };
      if (isOlder(delta.asOf, current.asOf)) {
        return "ignored";
      }
      Object.assign(current, pick(delta, [...AGENT_FIELDS, "asOf"]));
      this.agents.set(delta.agentId, current);
      this.notifyAgent(current);
      return "applied";
    }
    return "ignored";
  }

  onAgent(listener) {
    this.agentListeners.push(listener);
  }

  notifyAgent(agent) {
    for (const listener of this.agentListeners) {
      listener(agent);
    }
  }

  showAsOf(stamp) {
    if (!stamp) {
      return;
    }
    this.asOfElement.dateTime = stamp;
    this.asOfElement.textContent = formatTime(stamp);
  }
}

function isOlder(stamp, than) {
  const a = Date.parse(stamp);
  const b = Date.parse(than);
  return Number.isFinite(a) && Number.isFinite(b) && a < b;
}

function pick(source, names) {
  return Object.fromEntries(names.filter((name) => name in source).map((name) => [name, source[name]]));
}

function tile(queue) {
  const item = document.createElement("li");
  item.className = "tile";
  item.dataset.queueId = queue.queueId;
  const heading = document.createElement("h3");
  heading.textContent = queue.name ?? queue.queueId;
  heading.title = heading.textContent;
  const list = document.createElement("dl");
  for (const [name, label, kind] of QUEUE_FIELDS) {
    const row = document.createElement("div");
    row.className = name === "waiting" ? "row lead" : "row";
    const term = document.createElement("dt");
    term.textContent = label;
    const value = document.createElement("dd");
    value.dataset.field = name;
    value.textContent = format(kind, queue[name]);
    row.append(term, value);
    list.append(row);
  }
  item.append(heading, list);
  return item;
}

function updateTile(container, queue) {
  const item = [...container.children].find((child) => child.dataset.queueId === queue.queueId);
  if (!item) {
    return;
  }
  item.querySelector("h3").textContent = queue.name ?? queue.queueId;
  for (const [name, , kind] of QUEUE_FIELDS) {
    const value = item.querySelector(`dd[data-field="${name}"]`);
    const text = format(kind, queue[name]);
    if (value.textContent !== text) {
      value.textContent = text;
    }
  }
}

export function presenceText(agent) {
  return agent?.presence ?? DASH;
}
