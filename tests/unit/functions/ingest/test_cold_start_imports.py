"""What the ingest function's cold start loads: no pydantic, and no AWS client before the first event.

Issue 9's budget (`import ingest_handler` <= 2x `import boto3`, benchmarks/bench_cold_start.py) holds only
without both: pydantic is ~60 ms to import (and makes Powertools' batch utility import the parser's
pydantic models too), and a botocore client ~70 ms to build. Their absence is checked here, where a
regression fails a test with its cause, rather than only moving a benchmark's figure. The import runs in
a fresh interpreter with the environment Lambda's runtime sets, as the benchmark measures it.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_cold_start import environment, run_probe

# Records every botocore client built (boto3's included) and the modules loaded by the handler's import.
_PROBE = """
import json, sys
from botocore.session import Session

clients = []
create_client = Session.create_client

def recording(self, service_name, *args, **kwargs):
    clients.append(service_name)
    return create_client(self, service_name, *args, **kwargs)

Session.create_client = recording
import ingest_handler
print(json.dumps({"clients": clients, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def cold_start() -> dict[str, list[str]]:
    loaded: dict[str, list[str]] = json.loads(run_probe(_PROBE, environment("ingest")))
    return loaded


def test_the_import_builds_no_aws_client(cold_start: dict[str, list[str]]) -> None:
    assert cold_start["clients"] == []


def test_the_import_loads_no_pydantic(cold_start: dict[str, list[str]]) -> None:
    loaded = [name for name in cold_start["modules"] if name.split(".")[0] in ("pydantic", "pydantic_core")]
    assert loaded == []
