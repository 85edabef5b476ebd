"""Keep credentials out of everything cfexp writes: URLs lose their passwords, known secret variables their values."""

from __future__ import annotations

import os
import re

# Environment variables whose values are secrets wherever they appear (MLflow's basic auth, PostgreSQL's libpq).
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "CFEXP_DB_PASSWORD")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]+)@")
MASK = "***"


def redact(text: str) -> str:
    """`text` with the password of every URL in it, and the value of every secret variable, replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    for name in SECRET_VARIABLES:
        secret = os.environ.get(name)
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


def first_line(exc: BaseException) -> str:
    """An error's first line (its type when it has no message), redacted and cut to 300 characters: for a one-line
    report."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return redact(line if len(line) <= 300 else line[:300] + "...")
