"""Credentials: private file or systemd credential, refused when unsafe, never shown."""

from __future__ import annotations

import itertools
import os
import pickle
from pathlib import Path

import pytest

from trendbotd.adapters import credentials
from trendbotd.adapters.credentials import (
    Secret,
    load_credentials,
    register_secret,
    registered_secrets,
)
from trendbotd.errors import CredentialsError
from trendbotd.exitcodes import ExitCode

KEY = "k3yAAAAbbbbCCCCddddEEEE0001"
SECRET = "s3cretZZZZyyyyXXXXwwww0002"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def good(path: Path) -> Path:
    return write(path, f'api_key = "{KEY}"\napi_secret = "{SECRET}"\n')


def load_file(path: Path) -> credentials.Credentials:
    return load_credentials(credentials_file=path, credential_name="")


def refused(path: Path, match: str) -> CredentialsError:
    with pytest.raises(CredentialsError, match=match) as excinfo:
        load_file(path)
    message = str(excinfo.value)
    assert KEY not in message
    assert SECRET not in message
    assert excinfo.value.exit_code == ExitCode.NO_PERMISSION
    return excinfo.value


def test_private_file_loads_and_registers_both_values(tmp_path: Path) -> None:
    creds = load_file(good(tmp_path / "creds.toml"))
    assert creds.api_key.reveal() == KEY
    assert creds.api_secret.reveal() == SECRET
    assert creds.source == str(tmp_path / "creds.toml")
    assert KEY in registered_secrets()
    assert SECRET in registered_secrets()


def test_values_never_show_in_repr_str_or_format(tmp_path: Path) -> None:
    creds = load_file(good(tmp_path / "creds.toml"))
    for text in (
        repr(creds),
        str(creds),
        f"{creds.api_secret}",
        f"{creds.api_key!r}",
        f"{creds.api_key:>20}",
    ):
        assert KEY not in text
        assert SECRET not in text
    assert repr(creds.api_secret) == "Secret('***')"
    with pytest.raises(TypeError):
        pickle.dumps(creds.api_secret)


def test_the_logging_redaction_sees_the_registered_values(tmp_path: Path) -> None:
    from trendbotd.service.logsetup import redact

    load_file(good(tmp_path / "creds.toml"))
    assert redact(f"oops {SECRET} and {KEY}") == "oops *** and ***"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_group_or_world_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = good(tmp_path / "creds.toml")
    path.chmod(mode)
    refused(path, f"mode {mode:04o}")


def test_stricter_modes_are_accepted(tmp_path: Path) -> None:
    path = good(tmp_path / "creds.toml")
    path.chmod(0o400)
    assert load_file(path).api_key.reveal() == KEY


def test_symlink_is_refused_even_to_a_good_file(tmp_path: Path) -> None:
    target = good(tmp_path / "real.toml")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    refused(link, "symlink")


def test_foreign_owner_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = good(tmp_path / "creds.toml")
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)  # nobody
    else:  # cannot give a file away unprivileged: pretend to be someone else instead
        mine = os.geteuid()
        monkeypatch.setattr(credentials.os, "geteuid", lambda: mine + 1)
    refused(path, "not by the running user")


def test_missing_directory_fifo_and_huge_files_are_refused(tmp_path: Path) -> None:
    refused(tmp_path / "absent.toml", "not found")
    (tmp_path / "dir").mkdir(mode=0o700)
    refused(tmp_path / "dir", "not a regular file")
    os.mkfifo(tmp_path / "fifo", 0o600)
    refused(tmp_path / "fifo", "not a regular file")
    refused(write(tmp_path / "big.toml", "#" * (credentials.MAX_FILE_BYTES + 1)), "large")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f'api_key = "{KEY}"\napi_secret = "{SECRET}', "not valid TOML"),
        (f'api_key = "{KEY}"\n', "api_secret is missing"),
        (f'api_key = ""\napi_secret = "{SECRET}"\n', "api_key is missing"),
        (f'api_key = 12\napi_secret = "{SECRET}"\n', "api_key is missing"),
        (f'api_key = "{KEY}"\napi_secret = "{SECRET}"\nsecret = "x"\n', "unknown keys secret"),
        (f'api_key = "{KEY} x"\napi_secret = "{SECRET}"\n', "whitespace"),
    ],
)
def test_malformed_content_is_refused_without_echoing_it(
    tmp_path: Path, text: str, match: str
) -> None:
    refused(write(tmp_path / "creds.toml", text), match)


def test_surrounding_whitespace_is_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", f'api_key = " {KEY}\\n"\napi_secret = "{SECRET}"\n')
    assert load_file(path).api_key.reveal() == KEY


def test_systemd_credential(tmp_path: Path) -> None:
    directory = tmp_path / "credentials"
    directory.mkdir()
    good(directory / "binance")
    (directory / "binance").chmod(0o440)  # group-readable is how systemd may hand it over
    creds = load_credentials(
        credentials_file=None,
        credential_name="binance",
        environ={"CREDENTIALS_DIRECTORY": str(directory)},
    )
    assert (creds.api_key.reveal(), creds.api_secret.reveal()) == (KEY, SECRET)
    assert creds.source == "$CREDENTIALS_DIRECTORY/binance"


def test_systemd_credential_problems(tmp_path: Path) -> None:
    directory = tmp_path / "credentials"
    directory.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(directory)}
    with pytest.raises(CredentialsError, match="CREDENTIALS_DIRECTORY is not set"):
        load_credentials(credentials_file=None, credential_name="binance", environ={})
    with pytest.raises(CredentialsError, match="not found"):
        load_credentials(credentials_file=None, credential_name="binance", environ=env)
    with pytest.raises(CredentialsError, match="not a plain name"):
        load_credentials(credentials_file=None, credential_name="../x", environ=env)
    good(directory / "open").chmod(0o644)
    with pytest.raises(CredentialsError, match="readable by others"):
        load_credentials(credentials_file=None, credential_name="open", environ=env)


def test_exactly_one_source_must_be_configured(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no credentials configured"):
        load_credentials(credentials_file=None, credential_name="", environ={})
    with pytest.raises(CredentialsError, match="not both"):
        load_credentials(
            credentials_file=good(tmp_path / "c.toml"), credential_name="x", environ={}
        )


def test_registry_ignores_empty_and_lists_longest_first() -> None:
    register_secret("")
    register_secret("abc-registry-test")
    register_secret("abc-registry-test-longer")
    found = registered_secrets()
    assert "" not in found
    assert found.index("abc-registry-test-longer") < found.index("abc-registry-test")
    assert all(len(a) >= len(b) for a, b in itertools.pairwise(found))


def test_secret_value_semantics() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert not Secret("")
    assert str(Secret("zzz")) == "***"
