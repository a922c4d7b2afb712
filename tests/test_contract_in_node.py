"""Another language can use the contract: Node's @grpc/proto-loader loads protos/ as is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_CHECK = ROOT / "tests" / "node"


@pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="needs node and npm")
def test_node_proto_loader_loads_the_session_service(tmp_path: Path) -> None:
    for name in ("package.json", "load_contract.js"):
        shutil.copy(NODE_CHECK / name, tmp_path / name)
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--no-package-lock"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=180,
    )

    shown = subprocess.run(
        ["node", "load_contract.js", str(ROOT / "protos")],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()

    assert "Run:stream" in shown
    assert {"CreateSession:unary", "GetSession:unary", "ListTurns:unary"} <= set(shown)
