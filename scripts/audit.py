"""`make audit`: pins against the minimum-safe-version table, then pip-audit where advisories can be reached.

pip-audit asks PyPI's JSON API for advisories; where only a package mirror is reachable it skips every
package ("Dependency not found on PyPI and could not be audited") and still prints "No known
vulnerabilities found" with exit code 0. So its JSON report is read here, and a run that audited nothing
says so and fails: an audit that could not run is not a clean audit. The table (minimum_versions.toml)
is checked offline every time, and by the test suite.

Exit codes: 0 audited and clean, 1 a pin below its minimum or a known vulnerability, 2 could not audit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
TABLE = Path(__file__).with_name("minimum_versions.toml")
# Every place a pin of a shipped or upload-decoding package is written.
PIN_FILES = (
    ROOT / "pyproject.toml",
    ROOT / "layers" / "shared" / "requirements.txt",
    ROOT / "functions" / "video" / "requirements.txt",
)
PIP_AUDIT = ROOT / ".venv-tools" / "bin" / "pip-audit"
PIN = re.compile(r"""["']?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([0-9][^"';,\s]*)""")


@dataclass(frozen=True)
class Minimum:
    package: str
    version: Version
    advisories: tuple[str, ...]
    # Why this minimum when no advisory sets it (e.g. "no known advisory; the current release").
    basis: str = ""

    @property
    def grounds(self) -> str:
        return ", ".join(self.advisories) or self.basis


def minimum_versions(table: Path = TABLE) -> dict[str, Minimum]:
    entries = tomllib.loads(table.read_text())
    return {
        name: Minimum(
            name, Version(entry["minimum"]), tuple(entry.get("advisories", ())), str(entry.get("basis", ""))
        )
        for name, entry in entries.items()
    }


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, Version]:
    """`name==version` pins in a requirements file or a pyproject's dependency strings (comments skipped)."""
    found = {}
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        for name, version in PIN.findall(code):
            found[normalized(name)] = Version(version)
    return found


def below_minimum(pinned: dict[str, Version], where: str, table: dict[str, Minimum]) -> list[str]:
    return [
        f"{where}: {name}=={pinned[name]} is below the minimum safe {minimum.version} ({minimum.grounds})"
        for name, minimum in table.items()
        if name in pinned and pinned[name] < minimum.version
    ]


def check_pins(table: dict[str, Minimum] | None = None) -> list[str]:
    table = table if table is not None else minimum_versions()
    problems = []
    for path in PIN_FILES:
        problems += below_minimum(pins(path.read_text()), str(path.relative_to(ROOT)), table)
    return problems


def summarize(report: dict[str, Any]) -> tuple[int, list[str]]:
    """pip-audit's JSON report as (exit code, lines): vulnerabilities 1, anything skipped 2, else 0."""
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    lines = [
        f"VULNERABLE {d['name']} {d.get('version', '')}: " + ", ".join(v["id"] for v in d["vulns"])
        for d in vulnerable
    ]
    if skipped:
        lines.append(
            f"NOT AUDITED: {len(skipped)} of {len(dependencies)} packages could not be checked "
            f"(no advisory source answered; first reason: {skipped[0]['skip_reason']})"
        )
    if vulnerable:
        return 1, lines
    if skipped:
        return 2, lines
    return 0, [f"audited {len(dependencies)} packages: no known vulnerabilities"]


def run_pip_audit(requirements: Path) -> tuple[int, list[str]]:
    completed = subprocess.run(
        [str(PIP_AUDIT), "--disable-pip", "--no-deps", "--progress-spinner", "off", "-f", "json",
         "-r", str(requirements)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        return 2, [
            f"NOT AUDITED: pip-audit failed ({completed.returncode}): {completed.stderr.strip()[-400:]}"
        ]
    return summarize(report)


def main() -> int:
    problems = check_pins()
    for problem in problems:
        print(f"BELOW MINIMUM {problem}")
    print(f"minimum-safe-version table: {'FAILED' if problems else 'ok'} ({TABLE.relative_to(ROOT)})")
    if not PIP_AUDIT.exists():
        print("NOT AUDITED: pip-audit is missing (make setup installs it into .venv-tools)")
        return 1 if problems else 2
    codes = {1 if problems else 0}
    with tempfile.TemporaryDirectory() as scratch:
        frozen = Path(scratch) / "venv-requirements.txt"
        freeze = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        frozen.write_text(freeze.stdout)
        shipped = (("Lambda layer", PIN_FILES[1]), ("video function", PIN_FILES[2]))
        for label, requirements in (*shipped, (".venv", frozen)):
            code, lines = run_pip_audit(requirements)
            for line in lines:
                print(f"{label}: {line}")
            codes.add(code)
    if 1 in codes:  # a known problem outranks a partial audit
        return 1
    if 2 in codes:
        print("The audit could not run here; the minimum-safe-version table above is what was checked.")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
