"""`sllm bench deadlines`: the share of answers that arrive within their latency budget.

The bundled SmolLM2 edge in the router's process (`sllm up`'s layout), the replay cloud at
400 ms to the first token and 30 ms a token, and mixed questions (GSM8K, BoolQ, NQ-open,
`max_tokens` 128) sent one at a time with budgets of 300 ms, 1 s and 3 s. The baseline,
measured in the same run: each request's edge minimum, the time of a 1-token edge answer
to the same question through the same router.
"""
