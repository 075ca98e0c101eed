"""What every request model shares: limits, strictness and the check of strings that reach the OS.

Every request model forbids unknown fields; every string that reaches the OS is checked for NUL bytes
and for text that cannot be encoded (lone surrogates), so odd input is a clear 4xx, never a 500.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MAX_OUTPUT_BYTES = 1_000_000
MAX_READ_BYTES = 20 * 1024 * 1024
MAX_WRITE_BYTES = 50 * 1024 * 1024
EXEC_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def check_os_string(value: str, what: str = "value") -> str:
    """Refuse strings the OS cannot take: NUL bytes and text that is not encodable as UTF-8."""
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogate?)") from exc
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    detail: str
