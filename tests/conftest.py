"""Fixtures shared across test folders live in tests/fixtures/, one module per component."""

pytest_plugins: list[str] = [
    "tests.fixtures.cloud",
    "tests.fixtures.edge",
    "tests.fixtures.embedding",
    "tests.fixtures.policies",
    "tests.fixtures.postgres",
    "tests.fixtures.router",
]
