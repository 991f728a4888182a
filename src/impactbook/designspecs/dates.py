"""A day in a plan: a YAML date, or the same day quoted as ISO text. Plans are validated strictly (no text
for a number), and strict validation takes no text for a date either; a quoted date is still meant as one."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator


def _iso_day(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


Day = Annotated[dt.date, BeforeValidator(_iso_day)]
