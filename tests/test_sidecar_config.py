"""The sidecar's options from a TOML file (``--config``), the environment and
the command line, in that order of precedence, and ``--print-config``."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from _sidecar_support import archives_in, read_compressed, write_archives

from shoebox_sidecar.cli import EXIT_USAGE, build_parser, main
from shoebox_sidecar.options import OPTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def toml_file(tmp_path: Any, text: str) -> str:
    path = tmp_path / "sidecar.toml"
    path.write_text(text)
    return str(path)


def printed_config(capsys: Any, *argv: str) -> dict[str, tuple[str, str]]:
    """``--print-config``'s lines as {name: (value text, origin)}; unset ones
    too. The settings are printed whether or not they pass a run's checks
    (which fail here without --dest: see test_print_config_checks_…)."""
    try:
        main([*argv, "--print-config"])
    except SystemExit as exit_:
        assert exit_.code == EXIT_USAGE
    shown = {}
    for line in capsys.readouterr().out.splitlines():
        setting, _, origin = line.rpartition("  # ")
        name, _, value = setting.removeprefix("# ").partition(" = ")
        shown[name] = (value, origin)
    return shown


def test_a_run_configured_by_a_toml_file_ships_as_the_flags_would(
        tmp_path: Any, capsys: Any) -> None:
    watch = tmp_path / "watch"
    written = write_archives(watch, 3, prefix="svc")
    write_archives(watch, 1, prefix="other")
    config = toml_file(tmp_path, f"""
        watch_dir = "{watch}"
        dest = "file://{tmp_path / 'dest'}"
        pattern = "svc-*.events"
        compress = "none"
        key_template = "flat/{{name}}{{suffix}}"
        once = true
        workers = 3
        max_backoff = 5
    """.replace("\n        ", "\n"))
    assert main(["--config", config]) == 0
    assert archives_in(watch) == ["other-000.events"]
    copies = tmp_path / "dest" / "flat"
    assert sorted(os.listdir(copies)) == sorted(written)
    for name, records in written.items():
        assert read_compressed((copies / name).read_bytes()) == records


def test_flags_win_over_the_environment_which_wins_over_the_file(
        tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    config = toml_file(tmp_path, 'workers = 5\ncompress = "zstd"\nlevel = 9\n'
                                 'dest = "s3://from-file/p"\nonce = true\n')
    monkeypatch.setenv("SHOEBOX_SIDECAR_WORKERS", "7")
    monkeypatch.setenv("SHOEBOX_SIDECAR_COMPRESS", "none")
    shown = printed_config(capsys, str(tmp_path), "--config", config, "--workers", "9",
                           "--no-once")
    assert shown["workers"] == ("9", "command line")
    assert shown["once"] == ("false", "command line")
    assert shown["compress"] == ('"none"', "environment SHOEBOX_SIDECAR_COMPRESS")
    assert shown["level"] == ("9", f"file {config}")
    assert shown["dest"] == ('"s3://from-file/p"', f"file {config}")
    assert shown["watch_dir"] == (f'"{tmp_path}"', "command line")
    assert shown["pattern"] == ('"*.events"', "default")
    assert shown["quarantine_dir"] == ("(unset)", "default")


def test_the_config_file_can_be_named_by_the_environment(
        tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    config = toml_file(tmp_path, "scan_interval = 2.5\n")
    monkeypatch.setenv("SHOEBOX_SIDECAR_CONFIG", config)
    assert printed_config(capsys)["scan_interval"] == ("2.5", f"file {config}")


def test_print_config_output_is_a_config_file_giving_the_same_settings(
        tmp_path: Any, capsys: Any) -> None:
    argv = [str(tmp_path / 'wa"tch\\dir'), "--dest", "s3://b/p", "--tag", "team=obs",
            "--tag", "env=prod", "--verify", "--level", "4", "--max-backoff", "12.5",
            "--log-level", "debug", "--metrics-port", "9464"]
    assert main([*argv, "--print-config"]) == 0
    text = capsys.readouterr().out
    table = tomllib.loads(text)
    assert table["watch_dir"] == str(tmp_path / 'wa"tch\\dir')
    assert table["tag"] == ["team=obs", "env=prod"]
    assert table["log_level"] == "DEBUG"
    assert table["verify"] is True and table["max_backoff"] == 12.5
    assert "quarantine_dir" not in table  # unset: a comment
    config = toml_file(tmp_path, text)
    again = printed_config(capsys, "--config", config)
    assert {name: value for name, (value, _) in again.items()} == {
        name: value for name, (value, _) in printed_config(capsys, *argv).items()}
    assert {origin for name, (value, origin) in again.items() if value != "(unset)"} == {
        f"file {config}"}


def test_every_option_is_in_help_the_environment_and_the_file(
        tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in OPTIONS:
        assert f"[env {option.variable}]" in help_text
        assert option.flag in help_text
    # A file setting each option to a value of its kind is accepted whole.
    samples = {"str": '"x"', "int": "3", "float": "1.5", "bool": "true", "list": '["k=v"]'}
    lines = [f"{option.name} = " + (f'"{option.choices[0]}"' if option.choices
                                    else samples[option.kind]) for option in OPTIONS]
    shown = printed_config(capsys, "--config", toml_file(tmp_path, "\n".join(lines)))
    assert all(origin.startswith("file ") for _, origin in shown.values())


@pytest.mark.parametrize("text, message", [
    ("destination = 's3://b'\n", "unknown key 'destination' (did you mean 'dest'?)"),
    ("[sidecar]\nwatch_dir = '/d'\n",
     "unknown table [sidecar]: the keys are top-level (watch_dir = …, not under a [sidecar] "
     "heading)"),
    ('workers = "2"\n', "key 'workers': expected an integer, not '2'"),
    ("workers = 2.5\n", "key 'workers': expected an integer, not 2.5"),
    ("workers = true\n", "key 'workers': expected an integer, not True"),
    ("verify = 1\n", "key 'verify': expected true or false, not 1"),
    ("max_backoff = 'soon'\n", "key 'max_backoff': expected a number, not 'soon'"),
    ("tag = 'a=b'\n", "key 'tag': expected a list of strings, not 'a=b'"),
    ("compress = 'rar'\n", "key 'compress': 'rar' is not one of gzip, none, zstd"),
    ("workers = \n", "not valid TOML"),
])
def test_a_bad_config_file_is_a_one_line_error_naming_file_and_key(
        tmp_path: Any, capsys: Any, text: str, message: str) -> None:
    config = toml_file(tmp_path, text)
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--dest", str(tmp_path / "dest"), "--config", config])
    assert exit_.value.code == EXIT_USAGE
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"config file {config}: " in error and message in error


def test_a_missing_config_file_is_a_usage_error(tmp_path: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(tmp_path / "nope.toml")])
    assert exit_.value.code == EXIT_USAGE
    assert f"config file {tmp_path / 'nope.toml'}: No such file" in capsys.readouterr().err


def test_a_bad_environment_value_names_the_variable(
        tmp_path: Any, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("SHOEBOX_SIDECAR_WORKERS", "two")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--dest", str(tmp_path / "dest")])
    assert exit_.value.code == EXIT_USAGE
    assert ("SHOEBOX_SIDECAR_WORKERS: expected an integer, not 'two'"
            in capsys.readouterr().err)


def test_required_options_may_come_from_the_file(tmp_path: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--config", toml_file(tmp_path, f'watch_dir = "{tmp_path}"\n')])
    assert exit_.value.code == EXIT_USAGE
    assert "--dest is required (or SHOEBOX_SIDECAR_DEST, or dest in the --config file)" in (
        capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "message"), [
    (["--workers", "-1"], "workers must be at least 1, not -1"),
    (["--key-template", "logs/{prefix}"], "{name}"),
    (["--scan-interval", "0"], "scan_interval must be more than 0, not 0.0"),
    (["--tag", "no-equals"], "--tag 'no-equals': expected KEY=VALUE"),
])
def test_print_config_checks_values_as_a_run_does_exit_2_naming_the_option(
        tmp_path: Any, capsys: Any, argv: list[str], message: str) -> None:
    """Issue 18: --print-config, the deploy README's check step, exited 0 for
    workers = -1, which the run then refused."""
    common = [str(tmp_path / "watch"), "--dest", str(tmp_path / "dest")]
    with pytest.raises(SystemExit) as exit_:
        main([*common, *argv, "--print-config"])
    assert exit_.value.code == EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.startswith("shoebox-sidecar: error: ")
    assert "watch_dir = " in captured.out  # what was checked is still shown
    assert not (tmp_path / "watch").exists() and not (tmp_path / "dest").exists()
    # The run refuses the same settings, with the same words.
    assert main([*common, *argv, "--once"]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_print_config_of_good_settings_exits_0_and_starts_nothing(tmp_path: Any,
                                                                  capsys: Any) -> None:
    assert main([str(tmp_path / "watch"), "--dest", "s3://bucket/prefix", "--workers", "3",
                 "--print-config"]) == 0
    assert "workers = 3  # command line" in capsys.readouterr().out
    assert not (tmp_path / "watch").exists()
