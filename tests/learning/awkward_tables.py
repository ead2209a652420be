"""Hypothesis strategies for well-formed outcome tables that are awkward to learn from:
one-character, empty, numeric, identical or non-ASCII texts, one class, a handful of
rows, unknown costs and cloud outcomes, repeated ids, fractional scores and weights."""

from __future__ import annotations

from hypothesis import strategies as st

from router.outcome_table import OutcomeRow
from router.signals import EdgeSignals

WORDS = ("apple", "river", "seven", "proof", "cell", "vote", "orbit", "tax")
# Any text a row may hold; surrogates cannot be written as UTF-8, so no table has them.
_ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def _text_kinds() -> st.SearchStrategy[st.SearchStrategy[str]]:
    """How one column's texts look across a table: a kind is drawn once per table, so a
    whole column can be single letters or empty, the cases that used to break fitting."""
    return st.sampled_from(
        [
            st.sampled_from("ABCD"),
            st.just(""),
            st.integers(-(10**400), 10**400).map(str),
            st.just("the same text"),
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
            st.text("éüßπ中文ℵ😀 ", max_size=12),
            _ANY_TEXT,
        ]
    )


_SIGNALS = st.builds(
    EdgeSignals,
    mean_logprob=st.floats(-50.0, 0.0),
    confidence_score=st.floats(0.0, 1.0),
    completion_tokens=st.integers(0, 500),
    answer_found=st.booleans(),
    exit_reason=st.sampled_from(["SETTLED", "COLLAPSE", "BUDGET", "LENGTH", "STOP", ""]),
)
_SCORE = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@st.composite
def tables(draw: st.DrawFn, *, balanced: bool = False) -> list[OutcomeRow]:
    """A table as `sllm learn` may receive it (every row valid on its own). `balanced`:
    enough rows of each class to learn from (the edge acceptable on every other row), ids
    shared by pairs of rows rather than by many."""
    size = draw(st.integers(100, 130) if balanced else st.integers(0, 120))
    prompts = draw(_text_kinds())
    answers = draw(st.one_of(st.none(), _text_kinds()))
    # Share of rows where the edge was right: 0 and 1 give a table of one class.
    right = draw(st.sampled_from([0.0, 0.02, 0.3, 0.5, 0.9, 1.0]))
    cloud_known = draw(st.booleans())
    with_signals = answers is not None and draw(st.booleans())
    repeated_ids = draw(st.booleans())
    tasks = draw(st.sampled_from([("",), ("a",), ("a", "b", "c"), ("x", "y", "z", "w", "é")]))
    rows = []
    for i in range(size):
        if balanced:
            edge_score, cloud_score = float(i % 2), 1.0 if cloud_known else None
            row_id = f"r{i // 2}" if repeated_ids else f"r{i}"
        else:
            edge_right = draw(st.floats(0.0, 1.0)) < right
            edge_score = float(edge_right) if draw(st.booleans()) else draw(_SCORE)
            cloud_score = draw(_SCORE) if cloud_known else None
            row_id = f"r{draw(st.integers(0, 5))}" if repeated_ids else f"r{i}"
        answered = answers is not None and draw(st.integers(0, 9)) > 0
        rows.append(
            OutcomeRow(
                id=row_id,
                prompt=draw(prompts),
                task=draw(st.sampled_from(tasks)),
                edge_answer=draw(answers) if answered and answers is not None else None,
                edge_score=edge_score,
                edge_signals=draw(_SIGNALS) if with_signals and answered else None,
                cloud_score=cloud_score,
                cloud_cost_usd=draw(st.one_of(st.none(), st.floats(0.0, 1.0))),
                weight=draw(st.one_of(st.just(1.0), st.floats(0.01, 100.0))),
            )
        )
    return rows
