"""The Powertools logger, tracer and metrics shared by every function of the service.

Each function sets POWERTOOLS_SERVICE_NAME (and POWERTOOLS_METRICS_NAMESPACE) in the template, so one
module serves both. Secret redaction is installed on the logger by `s3kp_core.redact`.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
