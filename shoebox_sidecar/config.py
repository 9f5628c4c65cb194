"""Where each option's value comes from: the command line, then the
environment (``SHOEBOX_SIDECAR_*``), then a TOML file (``--config``), then
the option's default.

The file takes every option of :data:`~shoebox_sidecar.options.OPTIONS` by
its flag's name with underscores, at the top level::

    watch_dir = "/var/lib/app/archive"
    dest = "s3://my-bucket/telemetry"
    compress = "zstd"
    tag = ["team=observability", "env=prod"]
    metrics_port = 9464

An unknown key, or a value of the wrong type, is a :class:`ConfigError`
naming the file and the key. :func:`render` shows the result as TOML, each
value with where it came from; its output is itself a valid config file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoebox._redact import redact

from .options import BY_NAME, ENV_PREFIX, OPTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the sidecar extra installs tomli on 3.10
    import tomli as tomllib

#: The environment variable naming the config file (beside ``--config``).
CONFIG_VARIABLE = ENV_PREFIX + "CONFIG"
DEFAULT = "default"
COMMAND_LINE = "command line"


class ConfigError(ValueError):
    """A value that cannot be taken, with where it was given; the message is
    one line, fit for the command line's error output."""


@dataclass(frozen=True)
class Settings:
    """Every option's value, and where it came from (:data:`COMMAND_LINE`,
    ``environment NAME``, ``file PATH`` or :data:`DEFAULT`)."""

    values: argparse.Namespace
    origins: Mapping[str, str]
    #: The config file read, if any.
    file: str | None = None


def read_file(path: str) -> dict[str, Any]:
    """The options a TOML file sets, checked; raises :class:`ConfigError`."""
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    values = {}
    for key, value in table.items():
        option = BY_NAME.get(key)
        if option is None and isinstance(value, dict):
            raise ConfigError(f"config file {path}: unknown table [{key}]: the keys are "
                              f"top-level (watch_dir = …, not under a [{key}] heading)")
        if option is None:
            close = difflib.get_close_matches(key, BY_NAME, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"config file {path}: unknown key {key!r}{hint}")
        try:
            values[key] = option.from_toml(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config file {path}: key {key!r}: {exc}") from None
    return values


def resolve(given: argparse.Namespace, environ: Mapping[str, str],
            config_file: str | None = None) -> Settings:
    """Merge the options given on the command line (``given``: a namespace
    holding only those, see :meth:`Option.add_to`), the environment, the
    file ``config_file`` (default: the one ``SHOEBOX_SIDECAR_CONFIG``
    names, if any) and the defaults. Raises :class:`ConfigError`."""
    if config_file is None:
        config_file = environ.get(CONFIG_VARIABLE) or None
    from_file = read_file(config_file) if config_file is not None else {}
    values, origins = argparse.Namespace(), {}
    for option in OPTIONS:
        if hasattr(given, option.name):
            value, origin = getattr(given, option.name), COMMAND_LINE
        elif option.variable in environ:
            origin = f"environment {option.variable}"
            try:
                value = option.from_text(environ[option.variable])
            except ValueError as exc:
                raise ConfigError(f"{option.variable}: {exc}") from None
        elif option.name in from_file:
            value, origin = from_file[option.name], f"file {config_file}"
        else:
            value, origin = option.default, DEFAULT
        setattr(values, option.name, value)
        origins[option.name] = origin
    return Settings(values, origins, config_file)


def render(settings: Settings) -> str:
    """The settings as TOML, one key per line with its origin in a comment;
    unset options appear commented out. Credentials in URLs
    (``endpoint_url = "http://user:password@host"``) are shown as ``***``
    (:func:`shoebox._redact.redact`), and the comment says so: such a line
    is valid TOML but no longer the value in use."""
    lines = []
    for option in OPTIONS:
        value = getattr(settings.values, option.name)
        origin = settings.origins[option.name]
        if value is None:
            lines.append(f"# {option.name} = (unset)  # {origin}")
            continue
        shown = _toml_value(value)
        hidden = redact(shown)
        if hidden != shown:
            origin += "; credentials hidden"
        lines.append(f"{option.name} = {hidden}  # {origin}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # JSON's string escapes (\", \\, \n, \uXXXX for control characters) are
    # TOML's too; ensure_ascii=False keeps other characters as they are,
    # since TOML has no escapes for the surrogate pairs JSON would write.
    return json.dumps(str(value), ensure_ascii=False)
