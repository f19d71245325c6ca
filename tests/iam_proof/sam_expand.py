"""Print template.yaml as SAM deploys it (JSON): `python sam_expand.py TEMPLATE PARAMETERS_JSON`.

Run by the SAM tools' interpreter (.venv-tools, where aws-sam-translator lives, pinned by the SAM CLI):
the project's own environment does not carry the translator. Offline: only a region is needed, and no
managed policy is looked up (the template names none; a name would fail the translation loudly).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def expand(template_path: str, parameters: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(Path(template_path).read_text(encoding="utf-8"))
    # What `sam package` does first: local code directories become S3 locations.
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for uri in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(uri), str) and not properties[uri].startswith("s3://"):
                properties[uri] = f"s3://packaged-code/{name}.zip"
    return dict(transform(template, parameters, _NoManagedPolicies()))


if __name__ == "__main__":
    json.dump(expand(sys.argv[1], json.loads(sys.argv[2])), sys.stdout, indent=1, sort_keys=True)
