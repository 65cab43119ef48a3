"""Secrets: generation, the env/_FILE channels, 0600 files, redaction, and the
launch contract keeping passwords out of argv."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from clipper_core import launch
from clipper_core.secrets import (
    RedactingFilter,
    new_password,
    new_token,
    read_secret,
    redact,
    redact_url,
    split_password,
    store_url_from_env,
    with_password,
    write_private,
)


def mode(path: object) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)  # type: ignore[arg-type]


def test_tokens_and_passwords_are_new_each_time() -> None:
    assert new_token() != new_token() and len(new_token()) >= 32
    password = new_password()
    assert password.isalnum() and len(password) == 48


def test_read_secret_from_env_then_file(tmp_path) -> None:
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    assert read_secret("X", {"X": "direct", "X_FILE": str(f)}) == "direct"
    assert read_secret("X", {"X_FILE": str(f)}) == "from-file"
    assert read_secret("X", {}) is None
    with pytest.raises(OSError):
        read_secret("X", {"X_FILE": str(tmp_path / "missing")})


def test_write_private_is_0600_and_replaces_atomically(tmp_path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("text, hidden", [
    ("redis://:s3cretpw@h:6379/0?prefix=c", "s3cretpw"),
    ("redis://user:s3cretpw@h:6379/0", "s3cretpw"),
    ("rediss://:s3cretpw@h/0?ssl_ca_certs=/x", "s3cretpw"),
    ("cannot open redis://:s3cretpw@10.0.0.1:6379/0: refused", "s3cretpw"),
    ("http://h/x?token=s3cretpw&a=1", "s3cretpw"),
    ("Authorization: Bearer s3cretpw", "s3cretpw"),
])
def test_redact_hides_passwords(text: str, hidden: str) -> None:
    out = redact(text)
    assert hidden not in out and "***" in out


def test_redact_url_keeps_the_rest() -> None:
    assert redact_url("redis://:pw1234@h:6379/0?prefix=c") == "redis://:***@h:6379/0?prefix=c"
    assert redact_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    assert redact("value abcd1234 here", ["abcd1234"]) == "value *** here"


def test_split_and_join_passwords() -> None:
    bare, pw = split_password("redis://:p%40ss@h:1/0?prefix=c")
    assert bare == "redis://h:1/0?prefix=c" and pw == "p@ss"
    assert with_password(bare, pw) == "redis://:p%40ss@h:1/0?prefix=c"
    assert with_password("redis://:other@h:1/0", "x") == "redis://:other@h:1/0"
    assert store_url_from_env(None, {"CLIPPER_STORE_URL": "redis://h:1/0",
                                     "CLIPPER_STORE_PASSWORD": "pw"}) == "redis://:pw@h:1/0"
    assert store_url_from_env("redis://h:2/0", {"CLIPPER_STORE": "redis://x/0"}) == \
        "redis://h:2/0"
    assert store_url_from_env(None, {}) is None


def test_log_filter_masks_messages_and_arguments(caplog) -> None:
    logger = logging.getLogger("clipper.test.redaction")
    flt = RedactingFilter(["tok-abcdef"])
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
    caplog.handler.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="clipper.test.redaction"):
            logger.info("store %s token %s", "redis://:pw-xyz@h:1/0", "tok-abcdef")
    finally:
        caplog.handler.removeFilter(flt)
        for handler in logging.getLogger().handlers:
            handler.removeFilter(flt)
    assert "pw-xyz" not in caplog.text and "tok-abcdef" not in caplog.text
    assert "redis://:***@h:1/0" in caplog.text


def test_frontends_get_the_store_password_through_the_environment() -> None:
    url = "redis://:pw-secret-1@redis:6379/0?prefix=c"
    secrets = launch.ClusterSecrets(admin_token="tok-secret-1")
    mgmt = launch.management_process(store_url=url, secrets=secrets)
    query = launch.query_process(store_url=url, frontend_id="q0", secrets=secrets)
    for spec in (mgmt, query):
        argv = " ".join(spec.argv())
        assert "pw-secret-1" not in argv and "tok-secret-1" not in argv
        assert "redis://redis:6379/0?prefix=c" in argv
        assert spec.environment()["CLIPPER_STORE_PASSWORD"] == "pw-secret-1"
        assert spec.file_environment("/run/s")["CLIPPER_STORE_PASSWORD_FILE"] == \
            "/run/s/store_password"
    assert "CLIPPER_ADMIN_TOKEN" not in query.environment()
    assert mgmt.environment()["CLIPPER_ADMIN_TOKEN"] == "tok-secret-1"


def test_redis_server_flags_are_durable_and_private() -> None:
    server = launch.RedisServer(port=6380, bind="127.0.0.1")
    args = server.args()
    for flag, value in (("--appendonly", "yes"), ("--appendfsync", "everysec"),
                        ("--protected-mode", "yes"), ("--dir", "/data")):
        assert args[args.index(flag) + 1] == value
    command = server.command()
    assert command[:2] == ["sh", "-c"] and "$CLIPPER_STORE_PASSWORD" in command[2]
    assert launch.ClusterSecrets(store_password="pw").for_role(launch.ROLE_STORE)[0].env == \
        "CLIPPER_STORE_PASSWORD"
    with pytest.raises(ValueError):
        launch.RedisServer.config("has space")
