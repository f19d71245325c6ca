"""The API function's configuration: environment variables, validated once at cold start.

Named `api_settings` (not `settings`) because both function directories share `sys.path` in tests and in
the offline stack. An invalid variable stops the cold start with a message naming it (never its value
when it is the cursor secret).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta
from s3kp_core.settings import EnvironmentSettings, env

# S3 accepts up to 7 days; a result link is meant to be followed now, so keep it short.
MAX_PRESIGN_EXPIRY_SECONDS = 3600


class ApiSettings(EnvironmentSettings, frozen=True, kw_only=True):
    description: ClassVar[str] = "API"

    results_table: Annotated[str, env("RESULTS_TABLE"), Meta(min_length=1)]
    presign_expiry_seconds: Annotated[
        int, env("PRESIGN_EXPIRY_SECONDS"), Meta(ge=1, le=MAX_PRESIGN_EXPIRY_SECONDS)
    ] = 300
    cursor_secret_arn: Annotated[str | None, env("CURSOR_SECRET_ARN")] = None
    cursor_secret: Annotated[
        Annotated[str, Meta(min_length=16)] | None, env("CURSOR_SECRET", secret=True)
    ] = None
    cursor_secret_cache_seconds: Annotated[int, env("CURSOR_SECRET_CACHE_SECONDS"), Meta(ge=0)] = 300
    cors_allow_origin: Annotated[str, env("CORS_ALLOW_ORIGIN"), Meta(min_length=1)] = "*"

    def __post_init__(self) -> None:
        if not (self.cursor_secret_arn or self.cursor_secret):
            raise ValueError("set CURSOR_SECRET_ARN (Secrets Manager) or CURSOR_SECRET (local runs)")
