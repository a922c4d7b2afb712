"""The committed stubs are exactly what `make proto` generates from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "clients" / "python" / "src"


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "-s", "stubs", f"PROTO_OUT={tmp_path}", f"BIN={Path(sys.executable).parent}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "make proto generated nothing"
    for relative in generated:
        assert filecmp.cmp(tmp_path / relative, COMMITTED / relative, shallow=False), (
            f"{relative} differs from a fresh `make proto`: run it and commit the result"
        )
