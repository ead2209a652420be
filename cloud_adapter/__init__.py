"""The cloud adapter: any OpenAI-compatible endpoint, fast to fail, within the deadline."""
