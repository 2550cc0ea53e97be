"""KPIs (docs/KPIS.md): the aggregation of the `events` topic into 15-minute buckets per queue,
agent and the whole service, its rebuild from the event history, and the supervisor's queries.
Public module: `shared.kpis.api`."""
