"""The service credential's settings and checks, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodedrop.common.auth import SCOPE_ADMIN, SCOPE_EXECUTE, SCOPE_OPERATOR, SCOPE_READ, Principal
from nodedrop.common.errors import PermissionDenied, Unauthenticated
from nodedrop.common.security import (
    MissingServiceIdentity,
    SecuritySettings,
    require_service_identity,
)
from nodedrop.common.service_auth import SERVICE_PRINCIPAL, ServiceCredential, ServiceVerifier
from nodedrop.common.settings import SettingsError
from nodedrop.common.tls import TlsSettings

TOKEN = "t" * 32
OLD = "o" * 32


class _Context:
    def __init__(self, common_name: bytes | None = None) -> None:
        self._auth: dict[str, list[bytes]] = {}
        if common_name is not None:
            self._auth["x509_common_name"] = [common_name]

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def _verify(credential: ServiceCredential, header: Any) -> Principal:
    return ServiceVerifier(credential.accepted).verify(header, _Context())


def test_token_and_previous_tokens_are_accepted_only_they() -> None:
    credential = ServiceCredential.from_env(
        {"NODEDROP_SERVICE_TOKEN": TOKEN, "NODEDROP_SERVICE_TOKEN_PREVIOUS": f"{OLD}, {'p' * 20}"}
    )
    assert credential.metadata() == (("authorization", f"Bearer {TOKEN}"),)
    for token in (TOKEN, OLD, "p" * 20):
        assert _verify(credential, f"Bearer {token}") is SERVICE_PRINCIPAL
    assert _verify(credential, f"bearer {TOKEN}".encode()) is SERVICE_PRINCIPAL
    with pytest.raises(Unauthenticated, match="invalid service credential"):
        _verify(credential, "Bearer " + "x" * 32)
    with pytest.raises(Unauthenticated, match="missing service credential"):
        _verify(credential, None)
    with pytest.raises(Unauthenticated):
        _verify(credential, "Basic abc")
    # Tenant credentials are told apart: they are real, just not for this.
    for tenant_credential in ("ndk_0123456789ab_" + "A" * 43, "ndt_0123456789ab_1_" + "0" * 64):
        with pytest.raises(PermissionDenied):
            _verify(credential, f"Bearer {tenant_credential}")


def test_the_service_principal_has_no_tenant_and_no_tenant_scope() -> None:
    assert SERVICE_PRINCIPAL.tenant_id == ""
    for scope in (SCOPE_READ, SCOPE_EXECUTE, SCOPE_ADMIN, SCOPE_OPERATOR):
        assert not SERVICE_PRINCIPAL.has_scope(scope)


def test_admin_does_not_imply_operator() -> None:
    admin = Principal("t", frozenset({SCOPE_ADMIN}), "k")
    assert admin.has_scope(SCOPE_READ) and admin.has_scope(SCOPE_EXECUTE)
    assert not admin.has_scope(SCOPE_OPERATOR)
    assert Principal("t", frozenset({SCOPE_OPERATOR}), "k").has_scope(SCOPE_OPERATOR)


def test_a_service_certificate_is_a_service_without_a_token() -> None:
    verifier = ServiceVerifier((), frozenset({"nodedrop-api"}))
    assert verifier.verify(None, _Context(b"nodedrop-api")) is SERVICE_PRINCIPAL
    with pytest.raises(Unauthenticated):
        verifier.verify(None, _Context(b"alice"))
    with pytest.raises(Unauthenticated):
        verifier.verify(None, _Context())


def test_token_from_files(tmp_path: Path) -> None:
    token_file, previous_file = tmp_path / "token", tmp_path / "previous"
    token_file.write_text(f"{TOKEN}\n")
    previous_file.write_text(f"{OLD}\n{'q' * 20}\n")
    credential = ServiceCredential.from_env(
        {
            "NODEDROP_SERVICE_TOKEN_FILE": str(token_file),
            "NODEDROP_SERVICE_TOKEN_PREVIOUS_FILE": str(previous_file),
        }
    )
    assert credential.token == TOKEN and len(credential.accepted) == 3
    assert TOKEN not in repr(credential) and OLD not in repr(credential)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"NODEDROP_SERVICE_TOKEN": "short"}, "NODEDROP_SERVICE_TOKEN"),
        ({"NODEDROP_SERVICE_TOKEN": "ndk_" + "a" * 30}, "NODEDROP_SERVICE_TOKEN"),
        ({"NODEDROP_SERVICE_TOKEN_FILE": "/nonexistent/token"}, "NODEDROP_SERVICE_TOKEN_FILE"),
        (
            {"NODEDROP_SERVICE_TOKEN": TOKEN, "NODEDROP_SERVICE_TOKEN_FILE": "/x"},
            "NODEDROP_SERVICE_TOKEN_FILE",
        ),
        ({"NODEDROP_SERVICE_TOKEN_PREVIOUS": OLD}, "NODEDROP_SERVICE_TOKEN"),
        (
            {"NODEDROP_SERVICE_TOKEN": TOKEN, "NODEDROP_SERVICE_TOKEN_PREVIOUS": "tiny"},
            "NODEDROP_SERVICE_TOKEN_PREVIOUS",
        ),
    ],
)
def test_bad_settings_name_the_variable_and_hide_the_token(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError) as info:
        ServiceCredential.from_env(env)
    assert info.value.name == variable
    for name, value in env.items():
        if not name.endswith("_FILE"):
            assert value not in str(info.value)


def test_partial_tls_settings_name_the_missing_variable(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    with pytest.raises(SettingsError) as info:
        TlsSettings.from_env({"NODEDROP_TLS_CERT": str(cert), "NODEDROP_TLS_CA": str(cert)})
    assert info.value.name == "NODEDROP_TLS_KEY"
    with pytest.raises(SettingsError) as info:
        TlsSettings.from_env(
            {
                "NODEDROP_TLS_CERT": str(cert),
                "NODEDROP_TLS_KEY": str(cert),
                "NODEDROP_TLS_CA": str(cert),
            }
        )
    assert info.value.name == "NODEDROP_TLS_KEY"  # not a private key
    assert TlsSettings.from_env({}) is None


def test_nothing_configured_is_refused() -> None:
    security = SecuritySettings.from_env({})
    assert not security.configured
    with pytest.raises(MissingServiceIdentity) as info:
        require_service_identity(security, "scheduler")
    message = str(info.value)
    assert "\n" not in message and "NODEDROP_SERVICE_TOKEN" in message
    require_service_identity(SecuritySettings(ServiceCredential.of(TOKEN), None), "scheduler")
