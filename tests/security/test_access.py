"""The authorization core with plain inputs: tokens, roles, tenants, the tokens file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.auth.access import Access, Action, Caller, Refused, load_tokens_file, tenant_of
from sllm.settings import RouterSettings, Settings, TokenGrant

APP = "app-token-0123456789"
LABELLER = "labeller-token-0123456789"
ADMIN = "admin-token-0123456789"
OPS = "ops-token-0123456789"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


ACCESS = Access(
    [
        TokenGrant(token=APP, tenant="app"),
        # Kept as its hash: the settings hold no secret.
        TokenGrant(sha256=sha256(LABELLER), tenant="labels", roles=["feedback"]),
        TokenGrant(token=ADMIN, tenant="ops", roles=["admin"]),
        TokenGrant(token=OPS, tenant="ops", roles=["metrics"]),
    ]
)


def refusal(authorization: str | None, action: Action, access: Access = ACCESS) -> str:
    with pytest.raises(Refused) as refused:
        access.caller(authorization, action)
    return refused.value.status


@pytest.mark.parametrize(
    ("token", "allowed"),
    [
        (APP, {"generate", "describe"}),
        (LABELLER, {"feedback", "describe"}),
        (ADMIN, {"generate", "describe", "feedback", "rollback", "metrics"}),
        (OPS, {"metrics", "describe"}),
    ],
)
def test_each_role_allows_its_actions_only(token: str, allowed: set[str]) -> None:
    actions: list[Action] = ["generate", "describe", "feedback", "rollback", "metrics"]
    for action in actions:
        if action in allowed:
            assert ACCESS.caller(f"Bearer {token}", action) is not None
        else:
            assert refusal(f"Bearer {token}", action) == "permission_denied"


def test_the_caller_is_the_tokens_tenant_with_its_roles() -> None:
    assert ACCESS.caller(f"Bearer {LABELLER}", "feedback") == Caller(
        "labels", frozenset({"feedback"})
    )
    # The scheme's case and spaces around the token do not matter.
    assert ACCESS.caller(f"bearer  {APP} ", "generate") == Caller("app", frozenset({"generate"}))


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Basic {APP}", APP, f"Bearer {APP}x", f"Bearer {sha256(APP)}"],
)
def test_a_missing_or_wrong_token_is_unauthenticated(authorization: str | None) -> None:
    assert refusal(authorization, "generate") == "unauthenticated"
    # Not even health-like actions pass without a token, and no message quotes it.
    with pytest.raises(Refused) as refused:
        ACCESS.caller(authorization, "describe")
    assert APP not in str(refused.value)


def test_no_tokens_is_open() -> None:
    open_ = Access([])
    assert open_.open
    assert open_.caller(None, "rollback") is None
    assert open_.metrics_status(None) is None
    assert tenant_of(None, "") == "default"
    assert tenant_of(None, "anyone") == "anyone"


def test_a_request_cannot_claim_another_tenant() -> None:
    caller = Caller("app", frozenset({"generate"}))
    assert tenant_of(caller, "") == "app"
    assert tenant_of(caller, "app") == "app"
    with pytest.raises(Refused) as refused:
        tenant_of(caller, "someone-else")
    assert refused.value.status == "permission_denied"


def test_metrics_status() -> None:
    assert ACCESS.metrics_status(f"Bearer {OPS}") is None
    assert ACCESS.metrics_status(f"Bearer {ADMIN}") is None
    assert ACCESS.metrics_status(f"Bearer {APP}") == 403
    assert ACCESS.metrics_status(None) == 401


def test_tokens_from_a_toml_file_the_environment_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "tokens.toml"
    toml.write_text(
        f'[[tokens]]\nsha256 = "{sha256(APP)}"\ntenant = "app"\n\n'
        f'[[tokens]]\nsha256 = "{sha256(ADMIN)}"\ntenant = "ops"\nroles = ["admin"]\n'
    )
    monkeypatch.setenv(
        "SLLM_ROUTER__TOKENS",
        json.dumps([{"token": LABELLER, "tenant": "labels", "roles": ["feedback"]}]),
    )
    monkeypatch.setenv("SLLM_ROUTER__TOKENS_FILE", str(toml))
    access = Access.from_settings(Settings().router)
    assert access.tenants == ["app", "labels", "ops"]
    assert access.caller(f"Bearer {ADMIN}", "rollback") == Caller("ops", frozenset({"admin"}))
    as_json = tmp_path / "tokens.json"
    as_json.write_text(json.dumps({"tokens": [{"sha256": sha256(APP), "tenant": "app"}]}))
    assert load_tokens_file(as_json)[0].tenant == "app"


@pytest.mark.parametrize(
    "text",
    [
        '[[tokens]]\ntenant = "app"\n',  # neither token nor sha256
        f'[[tokens]]\ntoken = "{APP}"\nsha256 = "{sha256(APP)}"\ntenant = "app"\n',  # both
        f'[[tokens]]\ntoken = "{APP}"\ntenant = "app"\nroles = ["root"]\n',  # no such role
        f'[[tokens]]\ntoken = "{APP}"\ntenant = "no spaces"\n',
        f'[[tokens]]\ntoken = "{APP}"\ntenant = "app"\n[other]\n',  # tokens only
        f'[[tokens]]\ntoken = "{APP}\n',  # not TOML
    ],
)
def test_a_wrong_tokens_file_is_refused_without_showing_a_token(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_tokens_file(path)
    assert str(path) in str(error.value)
    assert APP not in str(error.value)


def test_the_same_token_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Access([TokenGrant(token=APP, tenant="a"), TokenGrant(sha256=sha256(APP), tenant="b")])


def test_settings_never_show_a_token() -> None:
    settings = RouterSettings(tokens=[TokenGrant(token=APP, tenant="app")])
    assert APP not in repr(settings) and APP not in str(settings.model_dump())
    with pytest.raises(ValidationError):
        TokenGrant(tenant="app")
