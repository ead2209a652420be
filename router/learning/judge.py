"""Judges: labels for the outcome log without a user's feedback.

Given a reference (a gold answer, or the cloud's answer from a shadow call), a judge
scores the edge's answer 1 or 0. Numbers, choice letters and yes/no are matched with
`sllm.answers`; free text is matched the same way (the reference's words inside the
answer), or, when a cloud client is given, by asking the cloud whether the two agree.
A judge that cannot decide returns None (no label), never an exception: a failing cloud
costs a label, not a request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

from cloud_adapter import CloudClient, CloudError
from sllm.answers import AnswerFormat, answers_match, extract_answer
from sllm.chat import ChatMessage

log = structlog.get_logger("router.learning.judge")

JUDGE_PROMPT = (
    "You grade answers. Question:\n{question}\n\nReference answer:\n{reference}\n\n"
    "Candidate answer:\n{candidate}\n\n"
    "Does the candidate answer say the same as the reference answer? "
    "Reply with one word: yes or no."
)
JUDGE_TIMEOUT_S = 30.0


class Judge:
    def __init__(
        self, cloud: CloudClient | None = None, *, timeout_s: float = JUDGE_TIMEOUT_S
    ) -> None:
        self._cloud = cloud
        self._timeout_s = timeout_s

    async def score(
        self,
        *,
        question: str,
        answer: str,
        reference: str | Sequence[str],
        answer_format: AnswerFormat | str,
        reference_is_gold: bool = True,
    ) -> float | None:
        """1.0 when `answer` agrees with `reference`, 0.0 when not, None when undecided.

        `reference_is_gold`: the reference is the answer itself (a data set's gold);
        False: it is another model's full reply (a shadow call), whose final answer is
        extracted first."""
        fmt = AnswerFormat(answer_format)
        references = [reference] if isinstance(reference, str) else list(reference)
        if not reference_is_gold:
            extracted = [extract_answer(text, fmt) for text in references]
            references = [text for text in extracted if text is not None]
        if not references:
            return None
        if fmt is AnswerFormat.FREE_TEXT and self._cloud is not None:
            return await self._ask_cloud(question, answer, references[0])
        return float(answers_match(extract_answer(answer, fmt), references, fmt))

    async def _ask_cloud(self, question: str, answer: str, reference: str) -> float | None:
        assert self._cloud is not None
        prompt = JUDGE_PROMPT.format(question=question, reference=reference, candidate=answer)
        try:
            result = await self._cloud.complete(
                [ChatMessage("user", prompt)],
                max_tokens=4,
                deadline=time.monotonic() + self._timeout_s,
            )
        except CloudError as error:
            log.warning("judge.cloud_failed", error=str(error), endpoint=error.endpoint)
            return None
        verdict = extract_answer(result.text, AnswerFormat.YES_NO)
        if verdict is None:
            log.info("judge.undecided", reply=result.text[:80])
            return None
        return 1.0 if verdict == "yes" else 0.0
