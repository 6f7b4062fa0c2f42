"""``pytempest new NAME``: a project skeleton whose own tests pass right away.

The files come from ``templates/project`` (``*.tmpl``, with ``$name`` and ``$package``
substituted; the ``package`` folder is renamed to the package name)::

    NAME/
      README.md  Topology.toml  pyproject.toml
      <package>/__init__.py  <package>/topology.py     one topology, two tasks
      tests/test_topology.py                           TestRun tests
"""

from __future__ import annotations

import keyword
import re
import string
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from pytempest.cli.options import fail

PROJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
TAKEN = frozenset({"pytempest", "tests", "test", "redis", "click", "msgpack"})


def package_name(name: str) -> str:
    """The Python package of project ``name`` (``my-events`` -> ``my_events``), or a
    ``ValueError`` saying why the name cannot be used."""
    if not PROJECT_NAME.match(name):
        raise ValueError(
            f"project name {name!r} must start with a letter and use only letters, digits, '_' "
            "and '-' (at most 64): it names the topology, its metrics and its Redis keys"
        )
    package = name.replace("-", "_").lower()
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in TAKEN:
        raise ValueError(f"project name {name!r} would make a package {package!r} that hides another module")
    return package


def create_project(name: str, directory: Path) -> list[Path]:
    """Write the skeleton of project ``name`` into ``directory`` (created; must be empty).
    Returns the files written."""
    package = package_name(name)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(
            f"{directory} already exists and is not empty: choose another name or --directory"
        )
    values = {"name": name, "package": package}
    root = resources.files("pytempest.cli") / "templates" / "project"
    written: list[Path] = []
    for source, relative in _templates(root, Path()):
        target = directory / Path(*[package if p == "package" else p for p in relative.parts])
        target = target.with_name(target.name.removesuffix(".tmpl"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            string.Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8"
        )
        written.append(target)
    return written


def _templates(folder: Traversable, relative: Path) -> list[tuple[Traversable, Path]]:
    out: list[tuple[Traversable, Path]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            out += _templates(entry, relative / entry.name)
        elif entry.name.endswith(".tmpl"):
            out.append((entry, relative / entry.name))
    return out


@click.command()
@click.argument("name")
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create the project (default: ./NAME).")  # fmt: skip
def new(name: str, directory: Path | None) -> None:
    """Create a project skeleton NAME: a package with one topology of two tasks, a
    Topology.toml, a test using TestRun and a README. Its tests pass right away."""
    target = directory if directory is not None else Path(name)
    try:
        files = create_project(name, target)
    except (ValueError, FileExistsError) as exc:
        fail(str(exc))
    package = package_name(name)
    click.echo(f"created {target}/ ({len(files)} files)")
    click.echo(f"  cd {target}")
    click.echo("  python -m pytest")
    click.echo(f"  pytempest run {package}.topology:topology --config Topology.toml --until-idle")
