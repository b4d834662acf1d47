"""The profile's `datasets:` section: the re-identification thresholds of dataset exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from amana.cli_profile import profile_app
from anonymizer.engine import ProfileError, load_profile
from tests.anonymizer.test_profiles import child, write


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("datasets:\n  k_anonymity: 1\n", 4, "greater than or equal to 2"),
        ("datasets:\n  l_diversity: 0\n", 4, "greater than or equal to 1"),
        ("datasets:\n  k_anonymity: five\n", 4, "integer"),
        ("datasets:\n  k: 5\n", 4, "unknown key 'k'"),
    ],
)
def test_dataset_thresholds_are_linted(
    tmp_path: Path, profiles_dir: Path, body: str, line: int, reason: str
) -> None:
    """Rule: a `datasets:` section with k below 2, l below 1, a non-number or an unknown key
    fails `amana profile lint` with file, line and reason (k = 1 would be no protection)."""
    file = child(tmp_path, profiles_dir, body)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(file), tmp_path)
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason
    result = CliRunner().invoke(profile_app, ["lint", str(file)])
    assert result.exit_code == 1
    assert f"{file}:{line}:" in result.output.replace("\n", "")


def test_thresholds_default_inherit_and_version(tmp_path: Path, profiles_dir: Path) -> None:
    """Rules: without a `datasets:` section k is 5 and l is 2, and the version is the one
    such a profile had before the section existed (stating the defaults changes nothing);
    a child inherits its parent's thresholds key by key; any other value is a new version."""
    plain = child(tmp_path, profiles_dir, "options: [retain_uids]\n")
    base = load_profile(str(plain), tmp_path)
    assert (base.datasets.k_anonymity, base.datasets.l_diversity) == (5, 2)
    plain.write_text(plain.read_text() + "datasets: {k_anonymity: 5, l_diversity: 2}\n")
    assert load_profile(str(plain), tmp_path).version == base.version
    plain.write_text(plain.read_text().replace("k_anonymity: 5", "k_anonymity: 11"))
    raised = load_profile(str(plain), tmp_path)
    assert raised.datasets.k_anonymity == 11 and raised.version != base.version
    write(tmp_path, "grandchild", "name: grandchild\nextends: site\ndatasets: {l_diversity: 3}\n")
    grandchild = load_profile("grandchild", tmp_path)
    assert (grandchild.datasets.k_anonymity, grandchild.datasets.l_diversity) == (11, 3)


def test_national_profile_states_its_thresholds(profiles_dir: Path) -> None:
    """Rule: the national profile states k = 5 and l = 2, the defaults, so its version is
    unchanged by saying so."""
    national = load_profile("ma-national", profiles_dir)
    assert (national.datasets.k_anonymity, national.datasets.l_diversity) == (5, 2)
    assert "datasets:" in (profiles_dir / "ma-national.yaml").read_text()
