"""The structlog, loguru and OpenTelemetry integrations behind one small
interface, so that the behaviour they share is tested once for all three
(tests/test_integrations.py): each builds its integration object with the
handler's options and logs through its library's real API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


class Integration:
    """One integration, set up in ``directory`` with handler ``options``."""

    #: The payload key holding the message.
    message_key = "message"
    #: The ``logger`` metadata of what :meth:`log` logs.
    logger_name = "test.app"
    #: A program that logs "bye" through the integration into the directory
    #: given as argv[1] and exits without closing anything.
    exit_script = ""

    def __init__(self, directory: Path, **options: Any) -> None:
        raise NotImplementedError

    #: What stats() and close() are called on.
    target: Any

    def log(self, message: str, **fields: Any) -> None:
        """Log ``message`` at INFO with ``fields`` (structured data)."""
        raise NotImplementedError

    def log_exception(self, message: str) -> None:
        """Log ``message`` at ERROR with the exception being handled."""
        raise NotImplementedError

    def field(self, payload: dict[str, Any], name: str) -> Any:
        """The structured field ``name`` as the payload holds it."""
        return payload[name]

    def exception_text(self, payload: dict[str, Any]) -> str:
        text: str = payload["exception"]
        return text

    def close(self) -> None:
        raise NotImplementedError


class Structlog(Integration):
    message_key = "event"
    exit_script = """
import sys, structlog
from shoebox_logging.structlog import ShoeboxLoggerFactory
structlog.configure(processors=[structlog.processors.add_log_level],
                    logger_factory=ShoeboxLoggerFactory(directory=sys.argv[1]))
structlog.get_logger("exit").info("bye")
"""

    def __init__(self, directory: Path, **options: Any) -> None:
        import structlog

        from shoebox_logging.structlog import ShoeboxLoggerFactory

        self.target = ShoeboxLoggerFactory(directory=directory, **options)
        self._log = structlog.wrap_logger(
            self.target("test.app"), processors=[structlog.processors.add_log_level],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    def log(self, message: str, **fields: Any) -> None:
        self._log.info(message, **fields)

    def log_exception(self, message: str) -> None:
        self._log.exception(message)

    def close(self) -> None:
        self.target.close()


class Loguru(Integration):
    logger_name = __name__  # loguru names records after the calling module
    exit_script = """
import sys
from loguru import logger
from shoebox_logging.loguru import ShoeboxSink
logger.remove()
logger.add(ShoeboxSink(directory=sys.argv[1]), format="{message}")
logger.info("bye")
"""

    def __init__(self, directory: Path, enqueue: bool = False, **options: Any) -> None:
        from loguru import logger

        from shoebox_logging.loguru import ShoeboxSink

        self.target = ShoeboxSink(directory=directory, **options)
        logger.remove()  # loguru's stderr sink, and any a failed test left
        self._id = logger.add(self.target, format="{message}", level="INFO", enqueue=enqueue,
                              diagnose=False)
        self._logger = logger

    def log(self, message: str, **fields: Any) -> None:
        self._logger.bind(**fields).info(message)

    def log_exception(self, message: str) -> None:
        self._logger.exception(message)

    def close(self) -> None:
        self._logger.complete()
        self._logger.remove(self._id)  # calls the sink's stop()


class OpenTelemetry(Integration):
    message_key = "body"
    exit_script = """
import sys
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from shoebox_logging.otel import ShoeboxLogRecordProcessor
provider = LoggerProvider()
provider.add_log_record_processor(ShoeboxLogRecordProcessor(directory=sys.argv[1]))
provider.get_logger("exit").emit(body="bye", severity_number=SeverityNumber.INFO)
"""

    def __init__(self, directory: Path, **options: Any) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.resources import Resource

        from shoebox_logging.otel import ShoeboxLogRecordProcessor

        self.target = ShoeboxLogRecordProcessor(directory=directory, **options)
        self.provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}),
                                       shutdown_on_exit=False)
        self.provider.add_log_record_processor(self.target)
        self._logger = self.provider.get_logger("test.app")

    def log(self, message: str, **fields: Any) -> None:
        from opentelemetry._logs import SeverityNumber

        # Structured data goes in the body: the SDK cleans attributes itself
        # (calling str() on what it does not know), but passes the body on.
        attributes = {key: value for key, value in fields.items()
                      if type(value) in (str, int, float, bool)}
        self._logger.emit(body={"message": message, **fields}, attributes=attributes,
                          severity_number=SeverityNumber.INFO, severity_text="INFO")

    def log_exception(self, message: str) -> None:
        import sys

        from opentelemetry._logs import SeverityNumber

        self._logger.emit(body=message, severity_number=SeverityNumber.ERROR,
                          exception=sys.exc_info()[1])

    def field(self, payload: dict[str, Any], name: str) -> Any:
        return payload["body"][name]

    def exception_text(self, payload: dict[str, Any]) -> str:
        text: str = payload["attributes"]["exception.stacktrace"]
        return text

    def close(self) -> None:
        self.provider.shutdown()


INTEGRATIONS = {"structlog": Structlog, "loguru": Loguru, "otel": OpenTelemetry}


def message_of(integration: Integration, payload: dict[str, Any]) -> str:
    """The message of a record ``integration`` logged with :meth:`Integration.log`."""
    value = payload[integration.message_key]
    if isinstance(value, dict):  # OpenTelemetry's structured body
        value = value["message"]
    text: str = value
    return text
