"""Another language can use the contract: Node's @grpc/proto-loader loads protos/ as is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.api import field_behavior_pb2

ROOT = Path(__file__).resolve().parent.parent
NODE_CHECK = ROOT / "tests" / "node"
# The googleapis .proto files ship in the installed googleapis-common-protos package.
GOOGLEAPIS_PROTOS = Path(field_behavior_pb2.__file__).parents[2]


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
        ["node", "load_contract.js", str(ROOT / "protos"), str(GOOGLEAPIS_PROTOS)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()

    assert "Run:stream" in shown
    assert {"CreateSession:unary", "GetSession:unary", "ListTurns:unary"} <= set(shown)
