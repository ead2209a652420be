"""Feedback attaches to the logged row; the log survives a router restart; the export
writes the outcome table the learner reads (through gRPC and the `sllm` command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from router.outcome_table import read_table
from sllm.v1 import router_pb2
from tests.fixtures.router import RouterFactory
from tests.router.requests import EASY, ask

pytestmark = pytest.mark.slow


def _export(db: Path, out: Path, *extra: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sllm",
            "outcomes",
            "export",
            "--db",
            str(db),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


async def test_feedback_attaches_and_the_log_survives_a_restart(
    real_router: RouterFactory, tmp_path: Path
) -> None:
    db = tmp_path / "log.sqlite3"
    first = await real_router(db=db)
    edge_answered = await first.stub.Generate(ask())
    await first.stub.Feedback(
        router_pb2.FeedbackRequest(request_id=edge_answered.request_id, score=1.0, source="gold")
    )
    await first.server.stop(grace_s=0)

    second = await real_router(db=db, pre=1.0)
    cloud_answered = await second.stub.Generate(ask())
    # A request logged by the router before its restart still takes feedback.
    await second.stub.Feedback(
        router_pb2.FeedbackRequest(request_id=edge_answered.request_id, score=0.0, source="user")
    )
    await second.stub.Feedback(
        router_pb2.FeedbackRequest(request_id=cloud_answered.request_id, score=1.0, source="gold")
    )
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await second.stub.Feedback(
            router_pb2.FeedbackRequest(request_id="no-such-request", score=1.0)
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    await second.server.stop(grace_s=0)

    table = tmp_path / "table.jsonl"
    assert _export(db, table) == [f"wrote 2 rows to {table}"]
    rows = {row.id: row for row in read_table(table)}
    edge_row, cloud_row = rows[edge_answered.request_id], rows[cloud_answered.request_id]
    # The latest feedback wins; it labels the tier whose answer was returned.
    assert (edge_row.route, edge_row.edge_score, edge_row.cloud_score) == ("EDGE", 0.0, None)
    assert edge_row.label_source == "feedback:user"
    assert edge_row.edge_answer == edge_answered.text
    assert edge_row.edge_signals is not None
    # The edge's mode, so that a log of both modes teaches the mode model; none for the cloud.
    assert edge_row.reasoning_mode == "DIRECT"
    assert cloud_row.reasoning_mode == ""
    assert (cloud_row.route, cloud_row.cloud_score) == ("CLOUD", 1.0)
    assert cloud_row.cloud_answer == cloud_answered.text
    # By default only a hash of the prompt is kept.
    assert edge_row.prompt == ""


async def test_prompts_are_kept_only_when_settings_allow(
    real_router: RouterFactory, tmp_path: Path
) -> None:
    router = await real_router(store_prompts=True)
    await router.stub.Generate(ask(local_only=True))
    await router.server.stop(grace_s=0)
    table = tmp_path / "table.jsonl"
    _export(router.db, table)
    (row,) = read_table(table)
    assert row.prompt == EASY
