"""API credentials: loaded from a private TOML file or a systemd credential, never logged.

Sources, in the order the config names them:
- ``exchange.credentials_file``: TOML with ``api_key`` and ``api_secret``. Refused unless it
  is a regular file (not a symlink) owned by the running user with no group/other access.
- ``$CREDENTIALS_DIRECTORY/<exchange.credential_name>`` (systemd ``LoadCredential=``): same
  TOML. systemd owns and protects that directory, so only "regular file, not world
  readable" is checked there.

Every loaded value is registered for the logging redaction filter.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trendbotd.errors import CredentialsError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 64 * 1024
_KEYS: Final = ("api_key", "api_secret")

_registry_lock = threading.Lock()
_registry: set[str] = set()


def register_secret(value: str) -> None:
    """Make ``value`` known to the logging redaction filter. Empty strings are ignored."""
    if value:
        with _registry_lock:
            _registry.add(value)


def registered_secrets() -> tuple[str, ...]:
    """Every registered secret, longest first (so longer ones are masked before parts)."""
    with _registry_lock:
        return tuple(sorted(_registry, key=lambda s: (-len(s), s)))


class Secret:
    """A string that does not show itself in repr/str/format; ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: Secret
    api_secret: Secret
    source: str  # where they came from, for the start-up log (a path, never a value)


def load_credentials(
    *,
    credentials_file: Path | None,
    credential_name: str,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Load and register the credentials from whichever source is configured."""
    env = os.environ if environ is None else environ
    if credentials_file is not None and credential_name:
        raise CredentialsError("set exchange.credentials_file or credential_name, not both")
    if credentials_file is not None:
        creds = _parse(_read_private_file(credentials_file), credentials_file)
    elif credential_name:
        creds = _parse(_read_systemd_credential(credential_name, env), None, credential_name)
    else:
        raise CredentialsError(
            "no credentials configured: set exchange.credentials_file or "
            "exchange.credential_name (systemd LoadCredential=)"
        )
    register_secret(creds.api_key.reveal())
    register_secret(creds.api_secret.reveal())
    logger.info("credentials.loaded source=%s", creds.source)
    return creds


def _read_private_file(path: Path) -> bytes:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise CredentialsError(f"{path}: credentials file not found") from None
    except OSError as e:
        raise CredentialsError(f"{path}: cannot stat credentials file: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise CredentialsError(f"{path}: credentials file is a symlink; point at the real file")
    data, st = _read_nofollow(path)
    if st.st_uid != os.geteuid():
        raise CredentialsError(
            f"{path}: credentials file is owned by uid {st.st_uid}, not by the running user "
            f"(uid {os.geteuid()})"
        )
    if st.st_mode & 0o077:
        raise CredentialsError(
            f"{path}: credentials file has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
            f"readable by group or others (chmod 600 {path})"
        )
    return data


def load_secret_table(
    *,
    secret_file: Path | None,
    secret_name: str,
    keys: tuple[str, ...],
    setting: str,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Secret]:
    """Another secret (an alert channel's token or URL): a TOML table with exactly ``keys``,
    from a private file or a systemd credential, checked like the API keys and registered
    for redaction. ``setting`` names the config table in error messages."""
    env = os.environ if environ is None else environ
    source = _read_source(secret_file, secret_name, env, setting=f"{setting}.secret_name")
    if source is None:
        raise CredentialsError(f"{setting}: set secret_file or secret_name")
    data, where = source
    raw = _decode_toml(data, where, kind="secret is")
    if set(raw) != set(keys):
        raise CredentialsError(f"{where}: expected exactly the keys {', '.join(keys)}")
    values: dict[str, Secret] = {}
    for key in keys:
        value = raw[key]
        text = value.strip() if isinstance(value, str) else ""
        if not text or any(c.isspace() for c in text):
            raise CredentialsError(f"{where}: {key} must be a non-empty string without spaces")
        register_secret(text)
        values[key] = Secret(text)
    logger.info("secret.loaded for=%s source=%s", setting, where)
    return values


def _read_systemd_credential(
    name: str, env: Mapping[str, str], *, setting: str = "exchange.credential_name"
) -> bytes:
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        raise CredentialsError(
            f"{setting} = {name!r} but $CREDENTIALS_DIRECTORY is not set "
            "(the unit needs LoadCredential=" + name + ":/path/to/file)"
        )
    if "/" in name or name in ("", ".", ".."):
        raise CredentialsError(f"{setting} {name!r} is not a plain name")
    path = Path(directory) / name
    data, st = _read_nofollow(path)
    if st.st_mode & 0o007:
        raise CredentialsError(f"{path}: systemd credential is readable by others")
    return data


def _read_nofollow(path: Path) -> tuple[bytes, os.stat_result]:
    """Read a regular file without following a symlink at the last component."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CredentialsError(f"{path}: credentials not found") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CredentialsError(f"{path}: credentials file is a symlink") from None
        raise CredentialsError(f"{path}: cannot open credentials: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CredentialsError(f"{path}: credentials path is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise CredentialsError(f"{path}: credentials file is implausibly large")
        chunks = []
        while chunk := os.read(fd, MAX_FILE_BYTES + 1):
            chunks.append(chunk)
        return b"".join(chunks), st
    except OSError as e:
        raise CredentialsError(f"{path}: cannot read credentials: {e.strerror}") from None
    finally:
        os.close(fd)


def _read_source(
    file: Path | None, name: str, env: Mapping[str, str], *, setting: str
) -> tuple[bytes, str] | None:
    """A secret's bytes and where they came from: a private file or a systemd credential;
    None when neither is configured."""
    if file is not None:
        return _read_private_file(file), str(file)
    if name:
        data = _read_systemd_credential(name, env, setting=setting)
        return data, f"$CREDENTIALS_DIRECTORY/{name}"
    return None


def _decode_toml(data: bytes, where: str, *, kind: str) -> dict[str, Any]:
    """``kind`` names what is read, with its verb: "credentials are", "secret is"."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CredentialsError(f"{where}: {kind} not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        # The decoder's message names a line and column, never the text itself.
        raise CredentialsError(f"{where}: not valid TOML ({e})") from None


def _toml_table(data: bytes, where: str, *, kind: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The TOML table of a credentials file holding no key but ``keys``."""
    raw = _decode_toml(data, where, kind=kind)
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise CredentialsError(
            f"{where}: unknown keys {', '.join(unknown)} (expected {' and '.join(keys)})"
        )
    return raw


def _parse(data: bytes, path: Path | None, name: str = "") -> Credentials:
    where = str(path) if path is not None else f"$CREDENTIALS_DIRECTORY/{name}"
    raw = _toml_table(data, where, kind="credentials are", keys=_KEYS)
    values: dict[str, str] = {}
    for key in _KEYS:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CredentialsError(f"{where}: {key} is missing or not a non-empty string")
        value = value.strip()
        if any(c.isspace() for c in value):
            raise CredentialsError(f"{where}: {key} contains whitespace")
        values[key] = value
    return Credentials(Secret(values["api_key"]), Secret(values["api_secret"]), where)


@dataclass(frozen=True, slots=True)
class EtcdCredentials:
    user: str
    password: Secret
    source: str  # a path, never a value


def load_etcd_credentials(
    *,
    credentials_file: Path | None,
    credential_name: str,
    environ: Mapping[str, str] | None = None,
) -> EtcdCredentials | None:
    """etcd user/password (TOML ``user``, ``password``) from the same kinds of source as the
    exchange keys; None when [cluster] names none (etcd without authentication)."""
    env = os.environ if environ is None else environ
    if credentials_file is not None and credential_name:
        raise CredentialsError("set cluster.credentials_file or credential_name, not both")
    source = _read_source(credentials_file, credential_name, env, setting="cluster.credential_name")
    if source is None:
        return None
    data, where = source
    raw = _toml_table(data, where, kind="etcd credentials are", keys=("user", "password"))
    user, password = raw.get("user"), raw.get("password")
    if not isinstance(user, str) or not user.strip():
        raise CredentialsError(f"{where}: user is missing or not a non-empty string")
    if not isinstance(password, str) or not password:
        raise CredentialsError(f"{where}: password is missing or not a non-empty string")
    register_secret(password)
    logger.info("credentials.etcd_loaded source=%s", where)
    return EtcdCredentials(user.strip(), Secret(password), where)
