"""The option share the edge reports for CHOICE_LETTER and YES_NO answers: which tokens
spell an option, the share itself, and the summary of a scripted generation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_worker.options import OptionTokens, option_tokens
from sllm.answers import AnswerFormat
from sllm.v1 import common_pb2
from tests.edge.calls import ask, edge_stub, generate
from tests.fakes.model import ScriptedModel, Step, steps
from tests.fakes.worker import collect, scripted_worker
from tests.fixtures.edge import EdgeWorkerProcess

VOCABULARY = [b"", b" A", b"B", b" B", b"C ", b"Yes", b" no", b" False", b" a", b"AB"]


def test_every_spelling_of_an_option_is_found() -> None:
    # Choice letters in capitals only: " a" is an article.
    letters = option_tokens(len(VOCABULARY), VOCABULARY.__getitem__, AnswerFormat.CHOICE_LETTER)
    assert letters is not None
    assert letters.ids.tolist() == [1, 2, 3, 4]
    assert letters.values == ("A", "B", "B", "C")
    yes_no = option_tokens(len(VOCABULARY), VOCABULARY.__getitem__, AnswerFormat.YES_NO)
    assert yes_no is not None
    assert yes_no.ids.tolist() == [5, 6, 7]
    assert yes_no.values == ("yes", "no", "no")


def test_no_options_for_other_formats_or_a_single_option() -> None:
    assert option_tokens(len(VOCABULARY), VOCABULARY.__getitem__, AnswerFormat.NUMBER) is None
    assert option_tokens(2, [b"", b" A"].__getitem__, AnswerFormat.CHOICE_LETTER) is None


def test_the_share_adds_up_every_spelling_of_the_chosen_option() -> None:
    options = OptionTokens(np.array([1, 2, 3]), ("A", "B", "B"))
    logprobs = np.log(np.array([0.2, 0.3, 0.1], dtype=np.float32))
    assert options.share(logprobs, chosen_token=2, value="B") == pytest.approx(0.4 / 0.6)
    # The answer's token spells no option ("B," as one token): nothing to compare.
    assert options.share(logprobs, chosen_token=9, value="B") == 0.0


async def test_the_summary_reports_the_share_of_the_answer() -> None:
    # The reply begins after the primer ("The answer is"). At " B" the scripted model
    # gives the chosen token e^-1 and every other token, " A" among them (a piece of its
    # vocabulary, written after the answer settled), an equal part of the rest: the share
    # is e^-1 / (e^-1 + that part).
    model = ScriptedModel([Step(" B", -1.0), *steps(".", " Not", " A", ".")])
    worker = scripted_worker(model)
    try:
        letter = await collect(
            worker, ask("Which?", answer_format=common_pb2.ANSWER_FORMAT_CHOICE_LETTER)
        )
        number = await collect(
            worker, ask("How many?", answer_format=common_pb2.ANSWER_FORMAT_NUMBER)
        )
    finally:
        worker.close()
    rest = (1.0 - math.exp(-1.0)) / (model.n_vocab - 1)
    assert letter.summary.final_answer == "B"
    assert letter.summary.confidence.option_share == pytest.approx(
        math.exp(-1.0) / (math.exp(-1.0) + rest), rel=1e-5
    )
    assert number.summary.confidence.option_share == 0.0


@pytest.mark.slow
def test_the_real_model_reports_the_share_of_a_yes_no_answer(
    edge_server: EdgeWorkerProcess,
) -> None:
    with edge_stub(edge_server.target) as stub:
        result = generate(
            stub, ask("Is the sky blue?", answer_format=common_pb2.ANSWER_FORMAT_YES_NO)
        )
    assert result.summary.final_answer in {"yes", "no"}
    assert 0.0 < result.summary.confidence.option_share <= 1.0
