"""Shared test fixtures: the real data in ``../shared/data`` (skipped with a reason when absent)."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WEAKSUP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under the shared data folder; skips the calling test when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (set WEAKSUP_SHARED_DATA to ../shared/data)")
    return path


@pytest.fixture
def shared_data():
    """The function ``shared_path`` as a fixture: ``shared_data("PennFudanPed", "PNGImages")``."""
    return shared_path
