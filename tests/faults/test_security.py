"""Security: no unsafe deserialisation anywhere, least-privilege ACL users that run the
whole topology, passwords nowhere, TLS with a CA, a client certificate and host names."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from reliability import security
from reliability.lab import Lab
from reliability.redis_server import RedisServer, available, make_certificates
from reliability.scenarios import security as scenarios

from .conftest import ROOT, passed

# Modules that turn bytes into code or arbitrary objects.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
# Calls that do the same (yaml.load without SafeLoader, unsafe_load, full_load; eval/exec).
UNSAFE_CALLS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load_all")}
UNSAFE_BUILTINS = {"eval", "exec"}


def unsafe_uses(source: str, where: str) -> list[str]:
    """Imports of unsafe modules and unsafe calls in Python ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} import {a.name}" for a in node.names
                      if a.name.split(".")[0] in UNSAFE_MODULES]  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if (func.value.id, func.attr) in UNSAFE_CALLS:
                    found.append(f"{where}:{node.lineno} {func.value.id}.{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
                found.append(f"{where}:{node.lineno} {func.id}()")
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    sample = (
        "import pickle\nfrom marshal import loads\nimport yaml\nyaml.load(x)\neval(y)\nyaml.safe_load(z)\n"
    )
    assert unsafe_uses(sample, "sample.py") == [
        "sample.py:1 import pickle", "sample.py:2 from marshal import ...", "sample.py:4 yaml.load()",
        "sample.py:5 eval()"]  # fmt: skip


def test_no_pickle_marshal_or_unsafe_yaml_in_the_package_or_the_harness() -> None:
    files = sorted((ROOT / "src" / "pytempest").rglob("*.py")) + sorted((ROOT / "reliability").rglob("*.py"))
    assert len(files) > 50
    found = [u for f in files for u in unsafe_uses(f.read_text(), str(f.relative_to(ROOT)))]
    assert found == []


def test_the_documented_acl_is_the_tested_one() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    for rules in (security.TOPOLOGY, security.WORKER, security.STATUS):
        assert " ".join(rules.split()) in " ".join(doc.split())


def test_s1_least_privilege_acl_runs_everything_and_the_password_shows_nowhere(lab: Lab) -> None:
    passed(scenarios.s1_least_privilege(lab, True))


def _tls_server_works(tmp: Path) -> bool:
    try:
        server = RedisServer(tmp / "probe", "none", tls=make_certificates(tmp / "probe-certs"))
        server.start(timeout_s=5)
    except (RuntimeError, OSError, subprocess.CalledProcessError):  # no TLS build, or no openssl
        return False
    server.kill()
    return True


def test_s2_tls_with_ca_client_certificate_and_host_names(lab: Lab, tmp_path: Path) -> None:
    if not available() or not _tls_server_works(tmp_path):
        pytest.skip("redis-server is not installed or was built without TLS")
    passed(scenarios.s2_tls(lab, True))
