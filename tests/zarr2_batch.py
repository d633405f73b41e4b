"""The batch loop shared by the zarr-python 2.18 workers (stdlib only).

The tests drive zarr-python 2.18, which lives in its own virtual environment, through
one subprocess per batch: ``python WORKER MODE JOBS.json RESULTS.json``. Each worker
supplies its handlers per mode; this runs every job, records a traceback for a job
that fails instead of stopping the batch, and writes the results as JSON.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Callable


def run_batch(argv: list[str], handlers: dict[str, Callable[[dict], dict]],
              meta: dict[str, Any], job_id: Callable[[dict], str]) -> int:
    mode, jobs_path, results_path = argv[1:4]
    with open(jobs_path, encoding="utf-8") as f:
        jobs = json.load(f)
    handle = handlers[mode]
    results: dict[str, Any] = {"_meta": meta}
    for job in jobs:
        try:
            res = handle(job)
            res["ok"] = True
        except Exception:  # noqa: BLE001 - reported per job, the batch goes on
            res = {"ok": False, "error": traceback.format_exc()}
        results[job_id(job)] = res
    with open(results_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0
