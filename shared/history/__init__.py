"""The durable event history: every event of the `events` topic, as its envelope (ids, stamps,
attributes; never PHI), kept per UTC day so the KPI rebuild and the Power BI export can read what
happened after the outbox's event documents have expired. Public module: `shared.history.api`."""
