from pathlib import Path

import pytest

REAL_CAPTCHAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-captchas"


@pytest.fixture(scope="session")
def real_captchas() -> Path:
    if not REAL_CAPTCHAS.is_dir():
        pytest.skip("../shared/data/real-captchas is not present")
    return REAL_CAPTCHAS
