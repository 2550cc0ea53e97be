"""Cold-start cost: wall time of a fresh interpreter importing `function_app` against one importing
only `azure.functions` (the floor every Python function app pays), medians of N interleaved runs.
Then the first request: a fresh interpreter importing `function_app` and serving one profile GET
through the registered function on the embedded store.

    python -m bench.cold_start [--runs 15]

Target (issue 2): import ratio ≤ 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef-0123456789"

FIRST_REQUEST = """
import time
t0 = time.perf_counter()
import asyncio, json
import azure.functions as func
import function_app
fn = {f.get_function_name(): f for f in function_app.app.get_functions()}["get_my_profile"]
handler = fn.get_user_function()
req = func.HttpRequest("GET", "http://localhost/api/me/profile",
                       headers={"Authorization": "Bearer " + TOKEN}, body=b"")
response = asyncio.run(handler(req))
assert response.status_code == 200, response.get_body()
print(json.dumps({"in_process_s": time.perf_counter() - t0}))
"""


def _env(data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PSC_AUTH_MODE="dev",
        PSC_DEV_JWT_SECRET=SECRET,
        PSC_DATA_DIR=data_dir,
        PSC_STORE="embedded",
        PSC_BUS="embedded",
        PYTHONDONTWRITEBYTECODE="0",
    )
    return env


def _wall(code: str, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, done.stdout


async def _seed(data_dir: str) -> str:
    from shared.auth.dev_tokens import issue_dev_token
    from shared.config import load_settings
    from shared.runtime import build_runtime

    os.environ.update(_env(data_dir))
    runtime = await build_runtime(load_settings())
    await runtime.store.container("patients").create(
        {"id": "p-bench", "name": "Bench Patient", "timeZone": "UTC", "language": "en"}
    )
    await runtime.close()
    return issue_dev_token(SECRET, sub="bench", roles=["Patient"], patient_id="p-bench")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        env = _env(data_dir)
        token = asyncio.run(_seed(data_dir))
        # Warm the OS file cache and bytecode once so every measured run is alike.
        _wall("import function_app", env)
        baseline, app, first, first_inproc = [], [], [], []
        for _ in range(args.runs):
            baseline.append(_wall("import azure.functions", env)[0])
            app.append(_wall("import function_app", env)[0])
            wall, out = _wall(f"TOKEN = {token!r}\n" + FIRST_REQUEST, env)
            first.append(wall)
            first_inproc.append(json.loads(out.strip().splitlines()[-1])["in_process_s"])

    b, a = statistics.median(baseline), statistics.median(app)
    result = {
        "runs": args.runs,
        "import_azure_functions_median_s": round(b, 4),
        "import_function_app_median_s": round(a, 4),
        "ratio": round(a / b, 3),
        "target_ratio": 1.5,
        "first_request_wall_median_s": round(statistics.median(first), 4),
        "first_request_in_process_median_s": round(statistics.median(first_inproc), 4),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
