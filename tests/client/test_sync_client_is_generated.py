"""The blocking client is generated from the asyncio one: the two cannot drift apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
GENERATOR = CLIENT / "scripts" / "unasync.py"
COMMITTED = CLIENT / "src" / "agent_sessions_client" / "_sync.py"


def test_the_committed_sync_client_is_what_the_generator_writes(tmp_path: Path) -> None:
    generated = tmp_path / "_sync.py"

    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--output", str(generated)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    # On failure: edit _async.py, not _sync.py, and run `make sync-client`.
    assert COMMITTED.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8")
