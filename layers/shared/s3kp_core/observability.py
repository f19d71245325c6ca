"""The Powertools logger, tracer and metrics shared by every function of the service.

Each function sets POWERTOOLS_SERVICE_NAME (and POWERTOOLS_METRICS_NAMESPACE) in the template, so one
module serves both. Secret redaction is installed on the logger by `s3kp_core.redact`.

The tracer patches only the libraries the service calls out with (boto3 via botocore, the inference
client via requests): Powertools' default `patch_all` would also import and patch every other library
the X-Ray SDK knows (sqlite3, httpx, SQLAlchemy, ...) that happens to be installed, at cold start.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

TRACED_LIBRARIES = ("botocore", "requests")

logger = Logger()
tracer = Tracer(patch_modules=TRACED_LIBRARIES)
metrics = Metrics()
