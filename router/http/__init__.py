"""The OpenAI-compatible HTTP door: the chat completions API over the same `Router` as the
gRPC service (one pipeline, one outcome log, one set of metrics). docs/http.md."""
