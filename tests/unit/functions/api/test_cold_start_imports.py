"""What the API function's cold start builds: pydantic describes the response bodies on their first use.

The bodies are msgspec Structs; pydantic asks for their schemas (`s3kp_core.results_pydantic`) when
Powertools builds a route's request and response validation, on that route's first request. The import
(benchmarks/bench_cold_start.py, issue 9) therefore builds none of them, and a request builds only what
its route needs. Checked in a fresh interpreter with the environment Lambda's runtime sets.
"""

from __future__ import annotations

import json

from benchmarks.bench_cold_start import environment, run_probe

_PROBE = """
import json, sys
import api_handler

print(json.dumps({
    "described to pydantic": "s3kp_core.results_pydantic" in sys.modules,
    "boto3": "boto3" in sys.modules,
}))
"""


def test_the_import_describes_no_response_body_to_pydantic_and_builds_no_aws_client() -> None:
    loaded = json.loads(run_probe(_PROBE, environment("api")))
    assert loaded == {"described to pydantic": False, "boto3": False}
