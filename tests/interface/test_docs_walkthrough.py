"""docs/api.md's curl walk-through, run as written against a real server.

The page's first block starts the server; this test starts it the same way
(the pinned test clock read from that block) and runs every later block in
one bash session. Each ``"field":value`` shown in a block's ``#`` comments
must appear in what that block printed, so the page cannot go stale: a
wrong total, version or date fails here, on any day it is run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes.deployment import REPO_ROOT, SECRET, Deployment

pytestmark = pytest.mark.slow

PAGE = REPO_ROOT / "docs" / "api.md"
_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
#: A shown pair whose value is a string without an ellipsis, a number or a literal.
_PAIR = re.compile(r'"(\w+)":("[^"…]*"|-?\d+|true|false|null)(?=[,}\s]|$)')
_LONE_STRING = re.compile(r'"[^"…]+"')
_MARKER = "@@@ block {} @@@"


def walkthrough_blocks() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    return _BLOCK.findall(section)


def shown_pairs(block: str) -> list[str]:
    """What a block's comments show: ``"field":value`` pairs and lone JSON strings."""
    comments = [
        line.split("#", 1)[1].strip()
        for line in block.splitlines()
        if line.lstrip().startswith("#")
    ]
    lone_strings = [line for line in comments if _LONE_STRING.fullmatch(line)]
    pairs = [f'"{name}":{value}' for name, value in _PAIR.findall("\n".join(comments))]
    return pairs + lone_strings


def test_the_walkthrough_runs_as_written_and_prints_what_it_shows(tmp_path: Path) -> None:
    server_block, *blocks = walkthrough_blocks()
    start = re.search(r"SUITE_TEST_CLOCK_START=(\S+)", server_block)
    assert start is not None, "the walk-through must pin the test clock"
    assert "suitesub serve" in server_block
    deployment = Deployment(f"sqlite:///{tmp_path}/walkthrough.sqlite3", tmp_path)
    deployment.environment["SUITE_TEST_CLOCK_START"] = start.group(1)
    bin_dir = str(Path(sys.executable).parent)
    script = ["set -euo pipefail"]
    for index, block in enumerate(blocks):
        runnable = block.replace("source .venv/bin/activate", f'export PATH="{bin_dir}:$PATH"')
        runnable = re.sub(
            r"^API=.*$", f"API=http://{deployment.base}", runnable, flags=re.MULTILINE
        )
        # The commands run beside the server (suitesub renew) open its database.
        runnable = re.sub(r"^DB=.*$", f"DB={deployment.database_url}", runnable, flags=re.MULTILINE)
        script += [f"echo '{_MARKER.format(index)}'", runnable]
    try:
        deployment.start_api(workers=2)
        finished = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=tmp_path,
            env={**os.environ, "SUITE_JWT_SECRET": SECRET, "SUITE_VAR_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        deployment.stop()

    assert finished.returncode == 0, finished.stderr[-3000:]
    printed = re.split(r"@@@ block \d+ @@@\n", finished.stdout)[1:]
    assert len(printed) == len(blocks)
    for index, (block, output) in enumerate(zip(blocks, printed, strict=True)):
        missing = [pair for pair in shown_pairs(block) if pair not in output]
        assert not missing, f"block {index + 1} shows {missing} but printed:\n{output}"
    assert sum(len(shown_pairs(block)) for block in blocks) >= 30  # the page shows its answers
