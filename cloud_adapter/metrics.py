"""Prometheus metrics of cloud calls, labelled by endpoint (the base URL)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "sllm_cloud_calls_total",
    "Cloud calls by how they ended (ok, or the error kind).",
    ["endpoint", "outcome"],
)
ATTEMPTS = Counter(
    "sllm_cloud_attempts_total",
    "HTTP attempts, retries included.",
    ["endpoint"],
)
LATENCY = Histogram(
    "sllm_cloud_latency_seconds",
    "Successful calls, from start to last token, retries included.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
TTFT = Histogram(
    "sllm_cloud_ttft_seconds",
    "Streams: from the call's start to the first token.",
    ["endpoint"],
    buckets=(0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
)
TOKENS = Counter(
    "sllm_cloud_tokens_total",
    "Tokens of successful calls.",
    ["endpoint", "kind"],
)
COST = Counter(
    "sllm_cloud_cost_usd_total",
    "Cost of successful calls, in US dollars.",
    ["endpoint"],
)
BREAKER_STATE = Gauge(
    "sllm_cloud_breaker_state",
    "Circuit breaker of the endpoint: 0 closed, 1 half_open, 2 open.",
    ["endpoint"],
)
BREAKER_OPENED = Counter(
    "sllm_cloud_breaker_opened_total",
    "Times the endpoint's breaker opened.",
    ["endpoint"],
)
