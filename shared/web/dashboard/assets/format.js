// How every number is shown (docs/KPIS.md): counts as whole numbers, durations in seconds as
// mm:ss (h:mm:ss from an hour), fractions as %, NPS as a score; a missing value (null: no
// denominator in the range) as "—", never 0.

export const DASH = "—";

const KINDS = {
  count: (v) => countFormat.format(v),
  seconds: (v) => clock(v),
  fraction: (v) => percentFormat.format(v),
  score: (v) => scoreFormat.format(v),
};

const countFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const percentFormat = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const scoreFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, signDisplay: "exceptZero" });

// Every KPI of `totals` in the order the page shows them, with its label and kind.
export const KPIS = [
  ["incoming", "Incoming", "count"],
  ["engaged", "Engaged", "count"],
  ["abandoned", "Abandoned", "count"],
  ["shortAbandoned", "Short abandons", "count"],
  ["transferred", "Transferred", "count"],
  ["firstWaitSeconds", "First wait", "seconds"],
  ["asaSeconds", "Speed to answer", "seconds"],
  ["serviceLevel", "Service level", "fraction"],
  ["abandonRate", "Abandon rate", "fraction"],
  ["transferRate", "Transfer rate", "fraction"],
  ["ahtSeconds", "Handle time", "seconds"],
  ["firstResponseSeconds", "First response", "seconds"],
  ["utilization", "Utilization", "fraction"],
  ["csat", "CSAT", "fraction"],
  ["nps", "NPS", "score"],
  ["surveyResponseRate", "Survey responses", "fraction"],
  ["reminderDeliveryRate", "Reminders delivered", "fraction"],
  ["noShowRate", "No-show rate", "fraction"],
];

const KIND_OF = Object.fromEntries(KPIS.map(([name, , kind]) => [name, kind]));

export function isMissing(value) {
  return value === null || value === undefined || (typeof value === "number" && !Number.isFinite(value));
}

export function format(kind, value) {
  return isMissing(value) ? DASH : KINDS[kind](value);
}

export function formatKpi(name, value) {
  return format(KIND_OF[name] ?? "count", value);
}

export function clock(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, "0");
  if (hours > 0) {
    return `${hours}:${String(minutes).padStart(2, "0")}:${rest}`;
  }
  return `${String(minutes).padStart(2, "0")}:${rest}`;
}

const stampFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function formatStamp(stamp) {
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? DASH : stampFormat.format(date);
}

export function formatTime(stamp) {
  const date = new Date(stamp);
  return Number.isNaN(date.getTime()) ? DASH : timeFormat.format(date);
}
