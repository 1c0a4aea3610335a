"""Audit galton's installed dependencies (.venv) for known vulnerabilities with pip-audit.

Exit 0: nothing found, or only vulnerabilities on the allow-list (.ci/audit-allow.txt), or the
vulnerability service could not be reached (a clear notice is printed: the audit needs the
network, and CI must not fail because a service is down). Exit 1: a vulnerability that is
not on the allow-list. Exit 2: pip-audit is missing or failed in a way that is not the network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALLOW = HERE / "audit-allow.txt"
NETWORK = re.compile(r"connection|resolve|timed? ?out|unreachable|temporary failure|max retries|ssl|proxy|network",
                     re.IGNORECASE)


def allowed() -> dict[str, str]:
    """ID -> reason from the allow-list (``ID  reason``; '#' comments; a reason is required)."""
    out = {}
    for number, line in enumerate(ALLOW.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vuln, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"audit: {ALLOW.name} line {number}: {vuln} has no reason; every entry says why it is allowed")
        out[vuln] = reason.strip()
    return out


def main() -> int:
    tool = shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    if tool is None:
        print("audit: pip-audit is not installed in this environment (it comes with the dev extra)", file=sys.stderr)
        return 2
    allow = allowed()
    command = [tool, "--skip-editable", "--format", "json", "--progress-spinner", "off"]
    for vuln in allow:
        command += ["--ignore-vuln", vuln]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        print("audit: NOTICE: the vulnerability service did not answer within 600 s; audit skipped, not failed")
        return 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    if report is None:
        if NETWORK.search(done.stderr):
            print("audit: NOTICE: the vulnerability service could not be reached (no network?); "
                  "audit skipped, not failed")
            return 0
        print(f"audit: pip-audit failed (exit {done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
        return 2
    found = [(d["name"], d["version"], v["id"], v.get("fix_versions") or [])
             for d in report.get("dependencies", []) for v in d.get("vulns", []) if v["id"] not in allow]
    n_packages = len(report.get("dependencies", []))
    skipped = [d["name"] for d in report.get("dependencies", []) if d.get("skip_reason")]
    if not found and n_packages and len(skipped) == n_packages:
        # every package "not found": the service answered for none of them (a registry mirror
        # without the vulnerability API, or no network): nothing was checked
        print(f"audit: NOTICE: the vulnerability service could not check any of the {n_packages} packages "
              "(it is not reachable from here); audit skipped, not failed")
        return 0
    if found:
        print(f"audit: {len(found)} known vulnerabilities in {n_packages} packages (not on {ALLOW.name}):")
        for name, version, vuln, fixes in found:
            print(f"  {name} {version}: {vuln} (fixed in {', '.join(fixes) or 'no release yet'})")
        print(f"upgrade the package (and constraints.txt), or add the id to .ci/{ALLOW.name} with the reason")
        return 1
    print(f"audit: no known vulnerabilities in {n_packages} packages"
          + (f" ({len(allow)} allowed by .ci/{ALLOW.name})" if allow else "")
          + (f"; not audited: {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
