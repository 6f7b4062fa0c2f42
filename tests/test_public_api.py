"""The public API is small and deliberate: these names, nothing more by accident."""

from __future__ import annotations

import pytempest
import pytempest.deadletters
import pytempest.sources
import pytempest.testing


def test_top_level_names() -> None:
    assert sorted(pytempest.__all__) == sorted(
        [
            "AckPolicy", "ConfigError", "DeadLetterError", "Engine", "FailurePolicy", "Pipeline",
            "PipelineError", "PytempestError", "SourceConnectionError", "SourceError", "SourceMsg",
            "TargetError", "Task", "TaskError", "TaskSetupError", "TestRun", "Topology", "__version__", "task",
        ]
    )  # fmt: skip
    for name in pytempest.__all__:
        assert hasattr(pytempest, name), name


def test_subpackages_export_what_they_list() -> None:
    for module in (pytempest.sources, pytempest.deadletters, pytempest.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"MemorySource", "FileSource", "Source"} <= set(pytempest.sources.__all__)
    assert {"MemoryDeadLetter", "FileDeadLetter", "DeadLetter"} <= set(pytempest.deadletters.__all__)
    assert {"TestRun"} <= set(pytempest.testing.__all__)


def test_errors_form_one_tree() -> None:
    for name in (
        "ConfigError",
        "PipelineError",
        "TargetError",
        "TaskError",
        "SourceError",
        "DeadLetterError",
    ):
        assert issubclass(getattr(pytempest, name), pytempest.PytempestError)
    assert issubclass(pytempest.SourceConnectionError, pytempest.SourceError)
