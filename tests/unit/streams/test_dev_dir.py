"""`kpi dev` clears only the state it made itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import DEV_MARKER, CliError, _fresh_dev_dir


def test_a_directory_kpi_dev_did_not_make_is_left_alone(tmp_path: Path) -> None:
    theirs = tmp_path / "data"
    theirs.mkdir()
    (theirs / "v1").mkdir()
    with pytest.raises(CliError, match="not made by kpi dev"):
        _fresh_dev_dir(theirs)
    assert (theirs / "v1").is_dir()


def test_its_own_directory_starts_afresh(tmp_path: Path) -> None:
    own = tmp_path / "dev"
    _fresh_dev_dir(own)
    (own / "data").mkdir()
    _fresh_dev_dir(own)
    assert (own / DEV_MARKER).exists() and not (own / "data").exists()
