"""sllm: hybrid edge-cloud routing middleware for language models."""
