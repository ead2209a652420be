"""Prometheus metrics of the edge worker, in a registry of their own (served on its own port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sllm_edge_requests",
            "Generate calls by outcome (ok, invalid, rejected, cancelled, error)",
            ["outcome"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "sllm_edge_tokens",
            "Tokens processed, by kind (prompt, completion)",
            ["kind"],
            registry=self.registry,
        )
        self.decode_tokens_per_s = Histogram(
            "sllm_edge_decode_tokens_per_second",
            "Decode speed of each generation",
            buckets=(5, 10, 20, 40, 60, 80, 100, 150, 200, 400),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sllm_edge_queue_depth", "Generations waiting for the model", registry=self.registry
        )
        self.exit_reasons = Counter(
            "sllm_edge_exit_reasons",
            "Generations by exit reason",
            ["exit_reason"],
            registry=self.registry,
        )
        self.generation_seconds = Histogram(
            "sllm_edge_generation_seconds",
            "Wall time of a Generate call, queue included",
            registry=self.registry,
        )
