"""Every early-exit rule, exactly: the real worker, engine, generation loop and judge
around a scripted model (tests/fakes/model.py) instead of llama.cpp.

Why a fake model: which words a real model writes depends on the llama.cpp build, so the
exact token at which a rule fires, and the words of its detail, are only testable on a
script. The real-model tests (test_early_exit.py, test_generate.py) check the same
rules as behaviour on SmolLM2.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import pytest

from edge_worker.early_exit import ExitReason, ExitRules
from edge_worker.generation import Delta, PreparedGeneration, generate
from edge_worker.prompts import ReasoningMode
from edge_worker.worker import EdgeWorker
from sllm.answers import AnswerFormat, extract_answer
from sllm.settings import EarlyExitDefaults
from sllm.v1 import common_pb2, edge_pb2
from sllm.wire import InvalidRequest
from tests.edge.calls import Generated, ask
from tests.fakes.clock import FakeClock
from tests.fakes.model import ScriptedModel, Step, expected_entropy, steps
from tests.fakes.worker import collect, scripted_worker

DEFAULTS = EarlyExitDefaults()
NUMBER = common_pb2.ANSWER_FORMAT_NUMBER
YES_NO = common_pb2.ANSWER_FORMAT_YES_NO
STEP_BY_STEP = common_pb2.REASONING_MODE_STEP_BY_STEP
# Ten pieces of plain words, no line break, no answer marker: only the rules under test
# (or max_tokens, or the end of the script) can end a generation made of them.
WORDS = steps(" The", " sky", " is", " blue", " and", " the", " grass", " is", " green", " and")
# As many different words: no loop in them.
DISTINCT = steps(*(f" word{i}" for i in range(80)))
# The numbered list that keeps restating one answer line.
LISTED = [
    *steps("1", ".", " The", " answer", " is", " 1", ".", "\n"),
    *steps("2", ".", " The", " answer", " is", " 1", ".", "\n"),
    *steps("3", ".", " The", " answer", " is", " 1", ".", "\n"),
] * 4

WorkerFor = Callable[..., EdgeWorker]


@pytest.fixture
async def worker_for() -> AsyncIterator[WorkerFor]:
    """`worker_for(model, **edge_settings)`: a worker around `model`, closed afterwards."""
    workers: list[EdgeWorker] = []

    def make(model: ScriptedModel, **settings: Any) -> EdgeWorker:
        workers.append(scripted_worker(model, **settings))
        return workers[-1]

    yield make
    for worker in workers:
        worker.close()


async def run(
    worker_for: WorkerFor,
    script: list[Step],
    request: edge_pb2.EdgeGenerateRequest,
    **model: Any,
) -> tuple[Generated, ScriptedModel]:
    scripted = ScriptedModel(script, **model)
    return await collect(worker_for(scripted), request), scripted


def exit_reason(result: Generated) -> ExitReason:
    return ExitReason(result.exit_reason.removeprefix("EXIT_REASON_"))


def only_loops(repeat_tokens: int = DEFAULTS.collapse_repeat_tokens) -> edge_pb2.EarlyExit:
    """SETTLED and the log-probability window can never fire: only the loop rule can."""
    return edge_pb2.EarlyExit(
        settle_min_logprob=1.0, collapse_max_logprob=-100.0, collapse_repeat_tokens=repeat_tokens
    )


# STOP, and what every generation reports --------------------------------------------------


async def test_the_end_token_stops_and_the_deltas_add_up_to_the_summary(
    worker_for: WorkerFor,
) -> None:
    script = [Step("Paris", -0.2), Step(" is", -0.7), Step(" the", -0.05), Step(" capital.", -1.5)]
    result, model = await run(worker_for, script, ask("Capital of France?", max_tokens=50))
    summary = result.summary
    assert exit_reason(result) is ExitReason.STOP
    assert summary.exit_detail == "the model ended its reply"
    assert summary.text == "Paris is the capital."
    assert [d.text for d in result.deltas] == ["Paris", " is", " the", " capital."]
    assert [d.index for d in result.deltas] == [0, 1, 2, 3]
    # The worker's scorer computed exactly the scripted confidence from the logits row.
    assert [d.logprob for d in result.deltas] == pytest.approx([-0.2, -0.7, -0.05, -1.5], abs=1e-5)
    assert [d.entropy for d in result.deltas] == pytest.approx(
        [expected_entropy(s.logprob, model.n_vocab) for s in script], abs=1e-4
    )
    assert summary.completion_tokens == 4
    assert summary.prompt_tokens == model.prompt_tokens
    assert summary.confidence.mean_logprob == pytest.approx(-2.45 / 4, abs=1e-5)
    assert summary.confidence.min_logprob == pytest.approx(-1.5, abs=1e-5)
    assert not summary.escalate
    # Free text in DIRECT mode: the whole reply is the answer.
    assert summary.answer_found and summary.final_answer == "Paris is the capital."
    assert model.fed == [model._ids[s.data] for s in script]


async def test_a_character_split_across_tokens_is_emitted_whole(worker_for: WorkerFor) -> None:
    script = [Step("caf"), Step(b"\xc3"), Step(b"\xa9"), Step("!")]
    result, _ = await run(worker_for, script, ask("Where?"))
    assert [d.text for d in result.deltas] == ["caf", "", "\u00e9", "!"]
    assert result.summary.text == "caf\u00e9!"
    assert result.summary.completion_tokens == 4


# SETTLED ---------------------------------------------------------------------------------


async def test_settled_once_a_marked_answer_is_complete_and_confident(
    worker_for: WorkerFor,
) -> None:
    # DIRECT with a number: the reply is primed with "Answer:", so " 4" is marked; a number
    # is complete once its line ends. The rest of the script is never generated.
    script = [Step(" 4", -0.3), Step("\n", -0.1), *steps(" Because", " two", " and", " two")]
    result, model = await run(worker_for, script, ask("2 + 2?", answer_format=NUMBER))
    assert exit_reason(result) is ExitReason.SETTLED
    assert result.summary.completion_tokens == 2
    assert result.summary.text == " 4\n"
    assert result.summary.final_answer == "4"
    assert result.summary.exit_detail == "answer '4' complete; its mean logprob -0.30 >= -1"
    assert not result.summary.escalate
    assert model.rendered[0][1] == "Answer:"
    assert len(model.fed) == 1  # the settling token is emitted but never fed


async def test_an_unsure_answer_does_not_settle(worker_for: WorkerFor) -> None:
    # The same answer at logprob -1.5, below settle_min_logprob -1: generation goes on.
    script = [Step(" 4", -1.5), Step("\n", -0.1), *steps(" Because", " two", " and", " two")]
    result, _ = await run(worker_for, script, ask("2 + 2?", answer_format=NUMBER))
    assert exit_reason(result) is ExitReason.STOP
    assert result.summary.completion_tokens == 6
    assert result.summary.final_answer == "4"
    assert result.summary.confidence.answer_mean_logprob == pytest.approx(-1.5, abs=1e-5)


async def test_a_number_settles_only_when_its_line_ends(worker_for: WorkerFor) -> None:
    # Step by step: "Answer: 1" could still become "12"; the full stop and space end it.
    script = [
        *steps("Two", " dozen", " is", " 24", ".\n"),
        *steps("Answer", ":", " 1", "2", ".", " Done", " here"),
    ]
    result, _ = await run(
        worker_for, script, ask("Dozen?", answer_format=NUMBER, reasoning_mode=STEP_BY_STEP)
    )
    assert exit_reason(result) is ExitReason.SETTLED
    assert result.summary.text == "Two dozen is 24.\nAnswer: 12. Done"
    assert result.summary.completion_tokens == 11
    assert result.summary.final_answer == "12"


async def test_an_answer_in_a_list_item_does_not_settle(worker_for: WorkerFor) -> None:
    # "1. The answer is 1." is one step of a list the next item may contradict. Only
    # SETTLED is on (permissive threshold, no loop rule): it never fires.
    request = ask(
        "Legs of a dog?",
        answer_format=NUMBER,
        reasoning_mode=STEP_BY_STEP,
        max_tokens=40,
        early_exit=edge_pb2.EarlyExit(
            settle_min_logprob=-5.0, collapse_max_logprob=-100.0, collapse_repeat_tokens=0
        ),
    )
    result, _ = await run(worker_for, LISTED, request)
    assert exit_reason(result) is ExitReason.LENGTH
    assert result.summary.completion_tokens == 40
    assert result.summary.final_answer == "1"


async def test_a_yes_no_answer_settles_when_the_word_ends(worker_for: WorkerFor) -> None:
    script = [*steps("Coopers", " make", " barrels", ".\n", "The", " answer", " is", " yes")]
    script += steps(",", " since", " wine")
    request = ask("Coopers needed?", answer_format=YES_NO, reasoning_mode=STEP_BY_STEP)
    result, _ = await run(worker_for, script, request)
    assert exit_reason(result) is ExitReason.SETTLED
    assert result.summary.completion_tokens == 9  # "yes" ends at the comma, not before
    assert result.summary.text.endswith("The answer is yes,")
    assert result.summary.final_answer == "yes"


# COLLAPSE by the log-probability window ---------------------------------------------------


async def test_collapse_fires_when_the_window_mean_falls_below_the_threshold(
    worker_for: WorkerFor,
) -> None:
    # Defaults: window 16, threshold -1, at least 32 tokens. 34 tokens at -0.5, then -2.9
    # each: after b bad tokens the window mean is (-(16 - b) * 0.5 - 2.9 b) / 16, below
    # -1 first at b = 4 (-1.10; -0.95 at b = 3), token 38.
    script = [Step(s.text, -0.5) for s in DISTINCT[:34]]
    script += [Step(s.text, -2.9) for s in DISTINCT[34:]]
    result, _ = await run(worker_for, script, ask("Describe.", max_tokens=200))
    summary = result.summary
    assert exit_reason(result) is ExitReason.COLLAPSE
    assert summary.escalate
    assert summary.completion_tokens == 38
    assert summary.exit_detail == "mean logprob -1.10 over the last 16 tokens < -1"
    assert summary.confidence.min_window_mean_logprob == pytest.approx(-1.1, abs=1e-5)
    assert len(result.deltas) == 38


async def test_collapse_waits_for_its_minimum_of_tokens(worker_for: WorkerFor) -> None:
    # Every token is bad, but the window is judged only from token 32 (collapse_min_tokens).
    script = [Step(s.text, -2.0) for s in DISTINCT]
    result, _ = await run(worker_for, script, ask("Describe.", max_tokens=200))
    assert exit_reason(result) is ExitReason.COLLAPSE
    assert result.summary.completion_tokens == DEFAULTS.collapse_min_tokens == 32
    assert result.summary.exit_detail == "mean logprob -2.00 over the last 16 tokens < -1"


async def test_a_request_overrides_the_window_rule(worker_for: WorkerFor) -> None:
    # Window 4, no minimum: judged from the 4th token (never before the window is full).
    script = [Step(s.text, -0.3) for s in WORDS]
    early_exit = edge_pb2.EarlyExit(
        collapse_max_logprob=-0.25, collapse_window=4, collapse_min_tokens=0
    )
    result, _ = await run(worker_for, script, ask("Describe.", early_exit=early_exit))
    assert exit_reason(result) is ExitReason.COLLAPSE
    assert result.summary.completion_tokens == 4
    assert result.summary.exit_detail == "mean logprob -0.30 over the last 4 tokens < -0.25"


async def test_no_rule_fires_when_early_exit_is_disabled(worker_for: WorkerFor) -> None:
    script = [Step(s.text, -2.0) for s in WORDS * 5]  # a loop, and unsure: nothing fires
    request = ask("Describe.", max_tokens=45, early_exit=edge_pb2.EarlyExit(disabled=True))
    result, _ = await run(worker_for, script, request)
    assert exit_reason(result) is ExitReason.LENGTH
    assert result.summary.completion_tokens == 45
    assert not result.summary.escalate


# COLLAPSE by a loop -----------------------------------------------------------------------


async def test_collapse_fires_when_a_line_repeats(worker_for: WorkerFor) -> None:
    # The item numbers change, so no verbatim stretch sees this loop; the line rule does,
    # when the second line ends.
    request = ask(
        "Legs?",
        answer_format=NUMBER,
        reasoning_mode=STEP_BY_STEP,
        max_tokens=80,
        early_exit=only_loops(),
    )
    result, _ = await run(worker_for, LISTED, request)
    assert exit_reason(result) is ExitReason.COLLAPSE
    assert result.summary.escalate
    assert result.summary.completion_tokens == 16
    assert result.summary.text == "1. The answer is 1.\n2. The answer is 1.\n"
    assert result.summary.exit_detail == "the line 'the answer is 1.' repeats an earlier line"


async def test_collapse_fires_when_a_stretch_of_tokens_repeats(worker_for: WorkerFor) -> None:
    # Ten pieces written over and over, no line break: the last 12 tokens first repeat an
    # earlier stretch at token 22 (tokens 11-22 = tokens 1-12).
    result, _ = await run(worker_for, WORDS * 5, ask("Describe.", early_exit=only_loops()))
    assert exit_reason(result) is ExitReason.COLLAPSE
    assert result.summary.completion_tokens == 22
    assert result.summary.exit_detail == "the last 12 tokens repeat earlier text verbatim"
    pieces = [d.text for d in result.deltas]
    assert pieces[-12:] == pieces[:12]


async def test_the_loop_rule_is_off_at_zero(worker_for: WorkerFor) -> None:
    request = ask("Describe.", max_tokens=40, early_exit=only_loops(repeat_tokens=0))
    result, _ = await run(worker_for, WORDS * 5, request)
    assert exit_reason(result) is ExitReason.LENGTH
    assert result.summary.completion_tokens == 40


async def test_a_number_copied_digit_by_digit_is_no_loop(worker_for: WorkerFor) -> None:
    # One token a digit: the stretch repeats verbatim but holds fewer than 6 words.
    digits = steps(*"31415926535897")
    script = [*steps("Pi", " is", " "), *digits, *steps(",", " again", " "), *digits]
    result, _ = await run(worker_for, script, ask("Pi?", early_exit=only_loops()))
    assert exit_reason(result) is ExitReason.STOP
    assert result.summary.completion_tokens == len(script)


# BUDGET ---------------------------------------------------------------------------------


async def test_the_deadline_stops_within_one_token(worker_for: WorkerFor) -> None:
    # Each decode takes 250 ms on the fake clock; the caller's deadline is 1100 ms away.
    # The loop checks the clock before each decode: decodes start at 0, 250, ..., 1000 ms
    # (5 of them, after the token the prompt gave): 6 tokens, then BUDGET.
    model = ScriptedModel(WORDS * 5, decode_seconds=0.25)
    worker = worker_for(model)
    request = ask("Describe.", max_tokens=200, early_exit=edge_pb2.EarlyExit(disabled=True))
    result = await collect(worker, request, deadline=model.clock.now + 1.1)
    assert exit_reason(result) is ExitReason.BUDGET
    assert result.summary.completion_tokens == 6
    assert result.summary.exit_detail == "the time budget (or the caller's deadline) ran out"
    assert result.summary.text == "".join(str(s.text) for s in WORDS[:6])
    assert not result.summary.escalate


async def test_the_requests_time_budget_is_a_deadline(worker_for: WorkerFor) -> None:
    # The request's time_budget_ms counts from when the worker received it (read on the
    # real monotonic clock): this fake clock starts there, and the 1100 ms fall between
    # two 250 ms decodes, well clear of the microseconds validation takes.
    model = ScriptedModel(WORDS * 5, decode_seconds=0.25, clock=FakeClock(time.monotonic()))
    request = ask("Describe.", max_tokens=200, time_budget_ms=1100)
    result = await collect(worker_for(model), request)
    assert exit_reason(result) is ExitReason.BUDGET
    assert result.summary.completion_tokens == 6


async def test_a_deadline_already_past_never_touches_the_model(worker_for: WorkerFor) -> None:
    model = ScriptedModel(WORDS)
    result = await collect(worker_for(model), ask("Hi"), deadline=model.clock.now)
    assert exit_reason(result) is ExitReason.BUDGET
    assert result.summary.completion_tokens == 0
    assert result.summary.text == ""
    assert model.prefills == 0


async def test_the_deadline_interrupts_a_long_prompt(worker_for: WorkerFor) -> None:
    # 300 prompt tokens are 5 chunks of 64, 250 ms each; the deadline, 600 ms away, is
    # seen before the 4th chunk: no token is generated.
    model = ScriptedModel(WORDS, prompt_tokens=300, prefill_seconds=0.25)
    result = await collect(worker_for(model), ask("Hi"), deadline=model.clock.now + 0.6)
    assert exit_reason(result) is ExitReason.BUDGET
    assert result.summary.completion_tokens == 0
    assert result.summary.prompt_tokens == 300
    assert model.prefills == 1 and model.fed == []
    assert model.clock.now == pytest.approx(1000.0 + 0.75)


# LENGTH ---------------------------------------------------------------------------------


async def test_max_tokens_ends_the_generation(worker_for: WorkerFor) -> None:
    result, _ = await run(worker_for, WORDS * 5, ask("Describe.", max_tokens=7))
    assert exit_reason(result) is ExitReason.LENGTH
    assert result.summary.completion_tokens == 7
    assert result.summary.exit_detail == "max_tokens (7) generated"


async def test_a_full_context_ends_the_generation(worker_for: WorkerFor) -> None:
    # 10 prompt tokens in a context of 24: room for 14 more, fewer than max_tokens.
    result, _ = await run(
        worker_for, WORDS * 5, ask("Describe.", max_tokens=100), n_ctx=24, prompt_tokens=10
    )
    assert exit_reason(result) is ExitReason.LENGTH
    assert result.summary.completion_tokens == 14
    assert result.summary.exit_detail == "the context is full after 14 tokens"


async def test_a_prompt_that_fills_the_context_is_refused(worker_for: WorkerFor) -> None:
    worker = worker_for(ScriptedModel(WORDS, n_ctx=128, prompt_tokens=128))
    with pytest.raises(InvalidRequest, match="the prompt is 128 tokens but the context holds 128"):
        await collect(worker, ask("Describe."))


# CANCELLED ------------------------------------------------------------------------------


def test_cancelling_stops_the_loop_at_the_next_token() -> None:
    # Straight through generate(): the caller's flag is set while the 3rd delta is emitted
    # (right before the model decodes the 4th token); the loop sees it before the 5th.
    model = ScriptedModel(WORDS * 5)
    cancelled = threading.Event()
    emitted: list[Delta] = []

    def emit(delta: Delta) -> None:
        emitted.append(delta)
        if delta.index == 2:
            cancelled.set()

    job = PreparedGeneration(
        prompt_tokens=[1, 2, 3],
        primer="",
        reasoning_mode=ReasoningMode.DIRECT,
        answer_format=AnswerFormat.FREE_TEXT,
        max_tokens=100,
        deadline=None,
        rules=ExitRules(
            enabled=True,
            settle_min_logprob=DEFAULTS.settle_min_logprob,
            collapse_max_logprob=DEFAULTS.collapse_max_logprob,
            collapse_window=DEFAULTS.collapse_window,
            collapse_min_tokens=DEFAULTS.collapse_min_tokens,
            collapse_repeat_tokens=DEFAULTS.collapse_repeat_tokens,
        ),
        request_id="cancel",
    )
    result = generate(model, job, emit, cancelled, clock=model.clock)
    assert result.exit_reason is ExitReason.CANCELLED
    assert result.exit_detail == "the caller cancelled"
    assert result.completion_tokens == 4
    assert [d.index for d in emitted] == [0, 1, 2, 3]
    assert len(model.fed) == 3


async def test_a_caller_that_leaves_frees_the_model_within_one_token(
    worker_for: WorkerFor,
) -> None:
    # The model is held in its first decode while the caller reads the first delta and
    # leaves; once the decode ends the loop stops, and the next request is served.
    model = ScriptedModel(WORDS * 5, pause_at=0)
    worker = worker_for(model)
    events = worker.generate(ask("Describe.", max_tokens=100), deadline=None)
    async with aclosing(events):
        first = await anext(events)
    assert first.delta.text == " The"
    model.resume.set()
    after = await collect(worker, ask("Describe.", max_tokens=3))
    assert exit_reason(after) is ExitReason.LENGTH
    # The abandoned generation fed one token and stopped; the second fed two of its own.
    assert len(model.fed) == 1 + 2
    cancelled = worker.metrics.registry.get_sample_value(
        "sllm_edge_requests_total", {"outcome": "cancelled"}
    )
    assert cancelled == 1.0


# The answer reported is in the text -------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "pieces", "answer"),
    [
        (common_pb2.ANSWER_FORMAT_NUMBER, ("So", " 3", " +", " 4", " =", " 7", "."), "7"),
        (common_pb2.ANSWER_FORMAT_CHOICE_LETTER, ("It", " is", " (", "B", ")", "."), "B"),
        (common_pb2.ANSWER_FORMAT_YES_NO, ("No", ",", " never", "."), "no"),
    ],
)
async def test_the_final_answer_is_the_formats_answer_in_the_text(
    worker_for: WorkerFor,
    fmt: common_pb2.AnswerFormat.ValueType,
    pieces: tuple[str, ...],
    answer: str,
) -> None:
    request = ask("Q?", answer_format=fmt, reasoning_mode=STEP_BY_STEP)
    result, _ = await run(worker_for, steps(*pieces), request)
    assert result.summary.final_answer == answer
    name = common_pb2.AnswerFormat.Name(fmt).removeprefix("ANSWER_FORMAT_")
    assert extract_answer(result.summary.text, name) == answer
