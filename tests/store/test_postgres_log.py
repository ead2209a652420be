"""The outcome log on PostgreSQL: rows, feedback and the export, as on SQLite; published
policies kept, activated and listed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from router.outcome_table import read_table
from router.outcomes import OutcomeLog
from router.scorer import default_policy_dir
from router.store import open_store
from router.store.policies import load, pack
from tests.router.test_outcomes import QUESTION, _entry


async def test_rows_and_feedback_go_to_postgres_and_export_reads_them(
    postgres_url: str, tmp_path: Path
) -> None:
    log = OutcomeLog(postgres_url, store_prompts=True, queue_size=100)
    try:
        for n in range(3):
            log.record(_entry(f"r{n}"))
        assert await log.feedback("r1", 1.0, "gold")
        assert await log.feedback("r1", 0.0, "user", weight=2.0, cloud_text="Lyon")
        assert not await log.feedback("nope", 1.0, "gold")
        rows = {row["request_id"]: row for row in log.rows()}
    finally:
        await asyncio.to_thread(log.close)
    assert sorted(rows) == ["r0", "r1", "r2"]
    latest = rows["r1"]
    assert (latest["feedback_score"], latest["feedback_source"]) == (0.0, "user")
    assert (latest["feedback_weight"], latest["feedback_cloud_text"]) == (2.0, "Lyon")
    assert latest["prompt"] == QUESTION and rows["r0"]["feedback_score"] is None

    out = tmp_path / "table.jsonl"
    command = [
        sys.executable,
        "-m",
        "sllm",
        "outcomes",
        "export",
        "--store",
        postgres_url,
        "--out",
        str(out),
        "--labelled-only",
    ]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (row,) = read_table(out)
    assert (row.id, row.prompt, row.cloud_score, row.label_source) == (
        "r1",
        QUESTION,
        0.0,
        "feedback:user",
    )


def test_published_policies_are_kept_whole_and_one_is_active(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        files = pack(default_policy_dir())
        first = store.publish_policy("v1", files)
        second = store.publish_policy("v2", files)
        assert store.active_policy() == second
        assert store.policy_files(second.id) == files
        assert load(store.policy_files(second.id)).version == load(files).version
        again = store.activate_policy("v1")
        assert (again.id, again.active) == (first.id, True)
        assert [(p.version, p.active) for p in store.policies()] == [("v2", False), ("v1", True)]
    finally:
        store.close()
