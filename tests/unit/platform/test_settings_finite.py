"""Settings refuse NaN and infinities, and the request limits refuse nonsense."""

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from steadymail.config import Settings


@pytest.mark.parametrize("value", [math.nan, math.inf, "nan", "-inf"])
def test_a_non_finite_setting_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValidationError, match="finite"):
        Settings(data_dir=tmp_path, lease_ttl=value)


def test_request_limits_have_floors(tmp_path: Path) -> None:
    for field in ("max_request_bytes", "max_import_bytes", "max_recipients"):
        with pytest.raises(ValidationError, match=field):
            Settings(data_dir=tmp_path, **{field: 0})
