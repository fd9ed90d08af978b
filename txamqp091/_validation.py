"""Validation helpers for connection parameters: each raises ValueError naming the option.

Kept apart from :mod:`txamqp091.params` so the TLS options (:mod:`txamqp091._tls`) can
share them without an import cycle.
"""

from __future__ import annotations

import math
import numbers

_SHORTSTR_MAX = 255


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
        if low <= number <= high:
            return number
    raise ValueError(f"{name} must be an int between {low} and {high}, got {value!r}")


def _check_number(name: str, value: object, minimum: float, *, strict: bool) -> float:
    op = ">" if strict else ">="
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        raise ValueError(f"{name} must be a finite number {op} {minimum:g}, got {value!r}")
    return number


def _check_str(name: str, value: object, *, empty: bool = True, shortstr: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {value!r}")
    if not empty and not value:
        raise ValueError(f"{name} must not be empty")
    if shortstr and len(value.encode("utf-8")) > _SHORTSTR_MAX:
        raise ValueError(f"{name} must be at most {_SHORTSTR_MAX} bytes in UTF-8, got {value!r}")
    return value


def _check_mechanism(value: object) -> str:
    name = value.upper() if isinstance(value, str) else value
    if name not in ("PLAIN", "EXTERNAL"):
        raise ValueError(f"auth_mechanism must be 'PLAIN' or 'EXTERNAL', got {value!r}")
    return str(name)
