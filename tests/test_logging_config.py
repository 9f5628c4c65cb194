"""ShoeboxHandler configured the ways users configure logging: dictConfig with
defaults or every option, the README's own snippets, and bad options."""

from __future__ import annotations

import ast
import json
import logging
import logging.config
import re
from pathlib import Path
from typing import Any

import pytest
from _logging_support import read_records, restore_logging  # noqa: F401

from shoebox_logging import ShoeboxHandler

pytestmark = pytest.mark.usefixtures("restore_logging")

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's Logging section."""
    section = README.read_text().split("\n## Logging\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert blocks, f"README's Logging section has no {language} block"
    return blocks


def _readme_block(language: str) -> str:
    return _readme_blocks(language)[0]


def _run_readme_dictconfig(directory: Path) -> dict[str, Any]:
    """Run the README's dictConfig snippet as written but for its directory
    (which the handler creates, or fails); return the snippet's namespace."""
    namespace: dict[str, Any] = {"logging": logging}
    snippet = _readme_block("python")
    assert "/var/lib/myapp/archive" in snippet
    exec(snippet.replace("/var/lib/myapp/archive", str(directory)), namespace)
    return namespace


def _only_handler() -> ShoeboxHandler:
    (handler,) = [h for h in logging.getLogger().handlers if isinstance(h, ShoeboxHandler)]
    return handler


def test_dictconfig_with_directory_only_archives_with_defaults(tmp_path: Path) -> None:
    logging.config.dictConfig({
        "version": 1,
        "handlers": {"archive": {"class": "shoebox_logging.ShoeboxHandler",
                                 "directory": str(tmp_path)}},
        "root": {"level": "INFO", "handlers": ["archive"]},
    })
    # A logger created after dictConfig: the ones before are disabled by it.
    logging.getLogger("defaults_only").info("hello %s", "world")
    handler = _only_handler()
    assert handler.active_filename is not None
    handler.close()

    (path,) = tmp_path.iterdir()
    assert re.fullmatch(r"log_\d{8}_\d{6}_\d{6}_.+_\d+\.events", path.name)
    ((metadata, payload),) = read_records(tmp_path)
    assert metadata["level"] == "INFO" and metadata["logger"] == "defaults_only"
    assert payload["message"] == "hello world"


def test_dictconfig_with_every_option(tmp_path: Path) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"archive": {
            "class": "shoebox_logging.ShoeboxHandler",
            "level": "INFO",
            "directory": str(tmp_path / "new" / "dir"),
            "filename_template": "svc_%Y%m%d_%H%M%S_%f_{pid}.events",
            "roll_size_mb": "0.01",
            "roll_minutes": 5,
            "metadata_fields": ["request_id", "tenant"],
            "callbacks": [{"()": "shoebox.ChangeExtensionCallback", "new_extension": ".done"}],
            "durability": "record",
            "max_record_mb": 0.05,
            "queue_size": 64,
            "when_full": "block",
        }},
        "root": {"level": "DEBUG", "handlers": ["archive"]},
    })
    log = logging.getLogger("svc")
    log.debug("below the handler's level")
    for index in range(200):
        log.info("record %d", index, extra={"request_id": f"r{index}", "tenant": "acme"})
    log.info("too big", extra={"blob": "x" * 60_000})
    _only_handler().close()

    directory = tmp_path / "new" / "dir"
    names = sorted(path.name for path in directory.iterdir())
    assert len(names) > 1, "0.01 MiB archives must have rolled"
    assert all(re.fullmatch(r"svc_\d{8}_\d{6}_\d{6}_\d+\.events\.done", name)
               for name in names)
    records = read_records(directory, "*.done")
    assert [payload["message"] for _, payload in records] == [
        f"record {index}" for index in range(200)]
    assert all(metadata["request_id"] == f"r{index}" and metadata["tenant"] == "acme"
               for index, (metadata, _) in enumerate(records))


def test_dictconfig_takes_a_roll_checker_by_name_with_options(tmp_path: Path) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"archive": {
            "class": "shoebox_logging.ShoeboxHandler",
            "directory": str(tmp_path),
            "roll_checker": {"()": "shoebox.SizeRollChecker", "roll_size_mb": 0.001},
            "callbacks": ["shoebox.ChangeExtensionCallback"],
        }},
        "root": {"level": "INFO", "handlers": ["archive"]},
    })
    for index in range(30):
        logging.getLogger("svc").info("record %d with some padding to fill archives", index)
    _only_handler().close()

    assert len(list(tmp_path.glob("*.events.done"))) > 1
    assert len(read_records(tmp_path, "*.done")) == 30


def test_readme_dictconfig_snippet_configures_a_working_handler(tmp_path: Path) -> None:
    _run_readme_dictconfig(tmp_path)  # the snippet ends by calling dictConfig
    assert _only_handler().directory == str(tmp_path)
    logging.getLogger("myapp.checkout").info("order %s placed", "A-1",
                                             extra={"request_id": "7f3a9c", "tenant": "acme"})
    _only_handler().close()

    (path,) = tmp_path.iterdir()
    assert path.name.startswith("myapp_") and path.name.endswith(".events")
    ((metadata, payload),) = read_records(tmp_path)
    assert (metadata["request_id"], metadata["tenant"]) == ("7f3a9c", "acme")
    assert payload["message"] == "order A-1 placed"


def test_readme_dictconfig_keeps_loggers_made_before_it_emitting(tmp_path: Path) -> None:
    """Under gunicorn, its own log must not go quiet when the app configures
    logging the README's way (issue 13)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    server_log = logging.getLogger("gunicorn.error")  # made before the app's dictConfig
    server_log.addHandler(Collect())
    server_log.setLevel(logging.INFO)
    _run_readme_dictconfig(tmp_path)
    server_log.info("Booting worker with pid: %d", 31621)
    _only_handler().close()

    assert not server_log.disabled
    assert seen == ["Booting worker with pid: 31621"]
    # It propagates to the root logger, and so into the archive too.
    assert [payload["message"] for _, payload in read_records(tmp_path)] == seen


def test_readme_sample_record_is_what_the_handler_writes(tmp_path: Path) -> None:
    namespace = _run_readme_dictconfig(tmp_path)
    _, call, shown_metadata = _readme_blocks("python")[:3]
    exec(call, namespace)
    namespace["place_order"]()
    _only_handler().close()

    ((metadata, payload),) = read_records(tmp_path)
    shown = ast.literal_eval(shown_metadata)
    volatile = {"timestamp", "host", "pid"}
    assert metadata.keys() == shown.keys()
    assert {k: v for k, v in metadata.items() if k not in volatile} == {
        k: v for k, v in shown.items() if k not in volatile}
    shown_payload = json.loads(_readme_block("json"))
    assert list(payload) == list(shown_payload)  # the same fields, in the same order
    volatile |= {"module", "line"}  # the README's call lives in orders.py
    assert {k: v for k, v in payload.items() if k not in volatile} == {
        k: v for k, v in shown_payload.items() if k not in volatile}


def test_readme_fileconfig_snippet_configures_the_same_handler(tmp_path: Path) -> None:
    ini = _readme_block("ini").replace("/var/lib/myapp/archive", str(tmp_path))
    config_file = tmp_path / "logging.ini"
    config_file.write_text(ini)
    logging.config.fileConfig(config_file, disable_existing_loggers=False)
    logging.getLogger("myapp").warning("from an INI file", extra={"tenant": "acme"})
    _only_handler().close()

    (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".events"]
    assert re.fullmatch(r"myapp_\d{8}_\d{6}_\d{6}_.+_\d+\.events", path.name)
    ((metadata, payload),) = read_records(tmp_path, "*.events")
    assert metadata["tenant"] == "acme" and payload["message"] == "from an INI file"


@pytest.mark.parametrize(("options", "error", "named"), [
    ({"when_full": "later", "queue_size": 10}, ValueError, "when_full"),
    ({"when_full": "later"}, ValueError, "when_full"),
    ({"queue_size": -1}, ValueError, "queue_size"),
    ({"metadata_fields": ["level"]}, ValueError, "level"),
    ({"metadata_fields": [""]}, ValueError, "metadata_fields"),
    ({"roll_size_mb": 0}, ValueError, "roll_size_mb"),
    ({"roll_minutes": "soon"}, ValueError, "roll_minutes"),
    ({"max_record_mb": "-1"}, ValueError, "max_record_mb"),
    ({"durability": "sometimes"}, ValueError, "durability"),
    ({"roll_checker": "shoebox.NeverRollChecker", "roll_minutes": 1}, ValueError,
     "roll_checker"),
    ({"roll_checker": "shoebox.ArchiveCallback"}, TypeError, "roll_checker"),
    ({"callbacks": ["shoebox.NeverRollChecker"]}, TypeError, "callbacks"),
    ({"callbacks": [{"new_extension": ".x"}]}, ValueError, "callbacks"),
    ({"callbacks": "shoebox.ChangeExtensionCallback"}, TypeError, "callbacks must be a list"),
    ({"callbacks": [{"()": "shoebox.MoveFileCallback", "destination_foldr": "x"}]},
     TypeError, "destination_foldr"),
    ({"roll_size": 10}, TypeError, "roll_size"),
])
def test_bad_options_fail_at_configuration_naming_the_option(
        tmp_path: Path, options: dict[str, Any], error: type[Exception], named: str) -> None:
    with pytest.raises(error, match=named):
        ShoeboxHandler(directory=tmp_path, **options)
    assert not list(tmp_path.iterdir())
