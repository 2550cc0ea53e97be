"""The bad-input corpus for issue 15's KPI routes: each a 4xx problem that changes nothing."""

from __future__ import annotations

from tests.hardening.corpus import ANON, Case, case
from tests.hardening.world import AGENT, PATIENT, SUPERVISOR

K = "kpis"
Q = "GET /api/supervisor/kpis?"
DAY = "from=2026-01-05T00:00:00Z&to=2026-01-06T00:00:00Z"
KPIS: list[Case] = [
    case(K, "kpis without from", 400, SUPERVISOR, Q + "to=2026-01-06T00:00:00Z&interval=1h"),
    case(K, "kpis without to", 400, SUPERVISOR, Q + "from=2026-01-06T00:00:00Z&interval=1h"),
    case(K, "kpis from after to", 400, SUPERVISOR, Q + "from=2026-01-06T00:00:01Z&to=2026-01-06T00:00:00Z"),
    case(K, "kpis over 93 days", 400, SUPERVISOR, Q + "from=2026-01-01T00:00:00Z&to=2026-04-04T00:00:01Z"),
    case(K, "kpis over a century", 400, SUPERVISOR, Q + "from=1900-01-01T00:00:00Z&to=2199-01-01T00:00:00Z"),
    case(K, "kpis unknown interval", 400, SUPERVISOR, Q + DAY + "&interval=5m"),
    case(K, "kpis interval given twice", 400, SUPERVISOR, Q + DAY + "&interval=1h&interval=1d"),
    case(
        K,
        "kpis from without an offset",
        400,
        SUPERVISOR,
        Q + "from=2026-01-05T00:00:00&to=2026-01-06T00:00:00Z",
    ),
    case(K, "kpis from not a time", 400, SUPERVISOR, Q + "from=yesterday&to=2026-01-06T00:00:00Z"),
    case(K, "kpis year 9999", 400, SUPERVISOR, Q + "from=9999-12-31T00:00:00Z&to=9999-12-31T01:00:00Z"),
    case(
        K, "kpis queue and agent at once", 400, SUPERVISOR, Q + DAY + "&queueId=general&agentId=demo-agent-1"
    ),
    case(K, "kpis queue id a/b", 400, SUPERVISOR, Q + DAY + "&queueId=a%2Fb"),
    case(K, "kpis agent id of 101 characters", 400, SUPERVISOR, Q + DAY + "&agentId=" + "a" * 101),
    case(K, "kpis unknown parameter", 400, SUPERVISOR, Q + DAY + "&scope=all"),
    case(K, "kpis as an agent", 403, AGENT, Q + DAY),
    case(K, "kpis as a patient", 403, PATIENT, Q + DAY),
    case(K, "kpis without a token", 401, ANON, Q + DAY),
    case(K, "live kpis as an agent", 403, AGENT, "GET /api/supervisor/kpis/live"),
    case(K, "live kpis without a token", 401, ANON, "GET /api/supervisor/kpis/live"),
]
