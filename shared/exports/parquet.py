"""Rows to Parquet bytes with DuckDB (chosen over pyarrow: 75 MB installed against 170 MB; see
requirements.in). Imported only by an export: never on the function app's cold start (a
subprocess test checks `import function_app` loads no duckdb)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from shared.exports.tables import Row, Table


def parquet_bytes(table: Table, rows: Sequence[Row]) -> bytes:
    """The table's rows as one Parquet file (zstd), columns typed as the table says, also when
    there are no rows (Power BI then still sees the schema)."""
    import duckdb

    columns = list(table.columns)
    with tempfile.TemporaryDirectory(prefix="psc-export-") as folder:
        target = Path(folder) / f"{table.name}.parquet"
        connection = duckdb.connect(":memory:")
        try:
            connection.execute(
                "CREATE TABLE t (" + ", ".join(f'"{c}" {kind}' for c, kind in table.columns.items()) + ")"
            )
            if rows:
                placeholders = ", ".join("?" for _ in columns)
                values = [[row.get(c) for c in columns] for row in rows]
                # Only placeholders are formatted in; the values are bound parameters.
                connection.executemany(f"INSERT INTO t VALUES ({placeholders})", values)  # noqa: S608
            # The path is ours (a temporary folder), never caller input: no quoting issue.
            connection.execute(f"COPY t TO '{target.as_posix()}' (FORMAT parquet, COMPRESSION zstd)")
        finally:
            connection.close()
        return target.read_bytes()
