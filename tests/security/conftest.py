"""The security tests' certificates (one CA and its certificates for the session), and the
HTTP tests' door."""

from __future__ import annotations

import pytest

# A real router's HTTP door and the real openai client on it.
from tests.http.conftest import door, openai_client
from tests.security.pki import Pki, make_pki

__all__ = ["door", "openai_client", "pki"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
