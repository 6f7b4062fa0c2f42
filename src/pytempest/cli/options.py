"""Options shared by the commands, generated from the setting declarations, and the one
place that turns pytempest errors into exit codes."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from pytempest.config.settings import BY_KEY, Setting, mask_secrets, with_flags
from pytempest.errors import ConfigError, PipelineError, PytempestError, SourceError, TargetError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOURCE = 3
EXIT_ABORTED = 130

F = TypeVar("F", bound=Callable[..., Any])

_TYPES: dict[type, click.ParamType[Any]] = {int: click.INT, bool: click.BOOL, str: click.STRING}


def dest(setting: Setting) -> str:
    """The Python name of a setting's flag (``metric.flush_interval_ms`` -> ``metric_flush_interval_ms``)."""
    return setting.key.removeprefix("run.").replace(".", "_")


def _option(setting: Setting) -> Callable[[F], F]:
    assert setting.flag is not None
    kind: click.ParamType[Any] = _TYPES[setting.type]
    if setting.choices:
        kind = click.Choice(setting.choices, case_sensitive=False)
    metavar = "MS" if setting.unit == "ms" else ("N" if setting.type is int else None)
    if setting.key == "run.config":
        metavar = "FILE"
    return click.option(
        setting.flag, dest(setting), type=kind, default=None, metavar=metavar, help=setting.help()
    )


def setting_options(func: F) -> F:
    """Add a flag for every topology setting that has one (``--max-pending`` ...)."""
    for setting in reversed(with_flags()):
        if setting.section != "run":
            func = _option(setting)(func)
    return func


def config_option(func: F) -> F:
    """``--config FILE``."""
    return _option(BY_KEY["run.config"])(func)


def log_options(func: F) -> F:
    """``--log-level`` and ``--log-format``."""
    return _option(BY_KEY["run.log_level"])(_option(BY_KEY["run.log_format"])(func))


def setting_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The setting flags given on the command line, by setting key (None values dropped)."""
    out = {}
    for setting in with_flags():
        name = dest(setting)
        if setting.section != "run" and values.get(name) is not None:
            out[setting.key] = values[name]
    return out


def _run_setting(key: str, flag_value: str | None) -> str:
    setting = BY_KEY[key]
    if flag_value is not None:
        return str(setting.check(flag_value))
    text = os.environ.get(setting.env or "")
    if text:
        try:
            return str(setting.from_text(text))
        except ConfigError as exc:
            raise ConfigError(f"environment variable {setting.env}: {exc}") from None
    return str(setting.default)


class _MaskSecrets(logging.Filter):
    """Replaces URL passwords in every log line (a safety net under the masked messages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = mask_secrets(message), None
        return True


def setup_logging(level: str | None, fmt: str | None) -> None:
    """Configure logging from the flags, else ``PYTEMPEST_LOG_LEVEL`` / ``PYTEMPEST_LOG_FORMAT``."""
    level = _run_setting("run.log_level", level)
    fmt = _run_setting("run.log_format", fmt)
    try:
        from pytempest.logs import configure_logging
    except ImportError:  # pragma: no cover - pytempest.logs ships with pytempest
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        handlers = logging.getLogger().handlers
    else:
        handlers = [configure_logging(level, fmt)]
    for handler in handlers:
        handler.addFilter(_MaskSecrets())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``Error: message`` on standard error and exit with ``code``."""
    click.echo(f"Error: {mask_secrets(message)}", err=True)
    raise SystemExit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """Map pytempest errors to the documented exit codes (see ``pytempest.cli.main``)."""
    try:
        yield
    except (TargetError, PipelineError, ConfigError) as exc:
        fail(str(exc), EXIT_USAGE)
    except SourceError as exc:
        fail(str(exc), EXIT_SOURCE)
    except PytempestError as exc:
        fail(str(exc), EXIT_FAILED)


def handles_errors(func: F) -> F:
    """Decorator form of :func:`exit_codes`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with exit_codes():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
