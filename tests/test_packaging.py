"""The distribution: a wheel built from this repository carries its profiles and runs.

Building the wheel asks pip for the build backend (setuptools, from the pip cache or PyPI);
the wheel is installed without its dependencies into a fresh virtual environment that
borrows this environment's installed packages, so nothing else is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from amana.settings import Settings, shipped_profiles_dir
from tests.paths import PROFILES_DIR, REPO_ROOT
from tests.support.study_factory import identifying_strings, make_study

FIRST_PARTY = ("amana", "ingest", "anonymizer", "archive")
NOT_SOURCES = (".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*cache",
               ".hypothesis")


def test_every_package_is_listed_for_the_wheel() -> None:
    """Rule: every first-party package (a folder with __init__.py) is listed in
    pyproject's [tool.setuptools] packages, since the profiles mapping rules out automatic
    discovery and an unlisted package would be missing from installed wheels."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for root in FIRST_PARTY
        for init in (REPO_ROOT / root).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found | {"amana_profiles"} == listed
    assert config["tool"]["setuptools"]["package-dir"]["amana_profiles"] == "profiles"


def test_settings_find_the_installed_profiles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rule: the default profiles folder is the installed package's (here the editable
    install of this checkout), and AMANA_PROFILES_DIR overrides it."""
    monkeypatch.delenv("AMANA_PROFILES_DIR", raising=False)
    assert shipped_profiles_dir().samefile(PROFILES_DIR)
    assert Settings().profiles_dir.samefile(PROFILES_DIR)
    monkeypatch.setenv("AMANA_PROFILES_DIR", str(tmp_path))
    assert Settings().profiles_dir == tmp_path


@dataclass(frozen=True)
class Installed:
    amana: Path  # the console script
    site_packages: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel of this checkout, installed into a new virtual environment."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ in the source tree, and a stale build/
    # there could put removed modules back into later wheels.
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist),
         str(source)],
        check=True, cwd=root, timeout=600,
    )
    (wheel,) = dist.glob("amana-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )
    # The dependencies come from this environment's package folders, as plain path lines
    # so that their own .pth files (an editable install of this checkout among them) are
    # not run.
    ours = dict.fromkeys(
        [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        + [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    )
    (site_packages / "borrowed-dependencies.pth").write_text("\n".join(ours) + "\n")
    # --ignore-installed: the amana this environment has is left alone, never uninstalled.
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--ignore-installed", "--no-index", str(wheel)],
        check=True, cwd=root, timeout=300,
    )
    return Installed(venv / "bin" / "amana", site_packages)


def _run(installed: Installed, args: list[str], cwd: Path, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMANA_", "PYTHON"))}
    env |= {"AMANA_HOME": str(home), "OMP_THREAD_LIMIT": "1"}
    done = subprocess.run(
        [str(installed.amana), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_wheel_carries_the_profiles(installed: Installed) -> None:
    """Rule: the installed wheel holds every profile, pixel rule file, schema and table of
    profiles/, and its code is the wheel's, not this checkout's."""
    shipped = installed.site_packages / "amana_profiles"
    for source in PROFILES_DIR.rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            relative = source.relative_to(PROFILES_DIR)
            assert (shipped / relative).read_bytes() == source.read_bytes(), relative
    assert (installed.site_packages / "amana" / "cli.py").is_file()


def test_wheel_anonymizes_from_any_folder(installed: Installed, tmp_path: Path) -> None:
    """Rule: `amana anonymize` and `amana profile list` from an installed wheel work in any
    folder, with no checkout beside them: the default profile is found in the package."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    study = make_study(tmp_path / "in", layout=[("CT_small.dcm", "ct")])
    out = tmp_path / "out"

    listing = _run(installed, ["profile", "list"], elsewhere, home)
    assert "ma-national" in listing and "dicom-basic" in listing

    _run(installed, ["anonymize", str(study.files[0]), "--out", str(out), "--create-key"],
         elsewhere, home)
    (written,) = out.rglob("*.dcm")
    data = written.read_bytes()
    for value in identifying_strings(study):
        assert value not in data
    ds = pydicom.dcmread(written)
    assert ds.PatientIdentityRemoved == "YES"
    assert "ma-national" in str(ds.DeidentificationMethod)
    assert not any(elsewhere.iterdir())  # nothing was looked for or left in the cwd


def test_wheel_carries_the_console(installed: Installed) -> None:
    """Rule: the installed wheel holds every template, stylesheet, vendored viewer (with its
    licence) and message catalog of the web console, and the console starts from it."""
    console = REPO_ROOT / "archive" / "console"
    shipped = installed.site_packages / "archive" / "console"
    for folder in ("templates", "static", "locales"):
        for source in (console / folder).rglob("*"):
            if source.is_file():
                relative = source.relative_to(console)
                assert (shipped / relative).read_bytes() == source.read_bytes(), relative
    python = installed.amana.parent / "python"
    done = subprocess.run(
        [str(python), "-c", "from archive.console.web import Console; "
         "print(sorted(Console().languages))"],
        capture_output=True, text=True, timeout=120, cwd=installed.site_packages.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['ar', 'en', 'fr']"
