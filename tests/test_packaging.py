"""Both packages as users install them: wheels, in fresh venvs, beside the agent frameworks."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentsessions.sessions.v1 import sessions_pb2, sessions_pb2_grpc

from launchers.redis_server import free_port
from tests.processes import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
# Installing into fresh venvs takes a minute or so, from pip's cache.
pytestmark = pytest.mark.timeout(600)


def _build_wheel(project: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(project)],
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {
        "client": _build_wheel(ROOT / "clients" / "python", out / "client"),
        "server": _build_wheel(ROOT, out / "server"),
    }


class Venv:
    """A fresh virtual environment, to install into and run in."""

    def __init__(self, path: Path) -> None:
        venv.create(path, with_pip=True)
        self.bin = path / "bin"

    def pip(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / "pip"), "--disable-pip-version-check", "-q", *args],
            check=True,
            capture_output=True,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        # From the venv, so that nothing of the checkout is importable.
        return subprocess.run(
            [str(self.bin / "python"), "-c", code], capture_output=True, text=True, cwd=self.bin
        )


def _top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.split("/")[0]
            for name in archive.namelist()
            if not name.split("/")[0].endswith((".dist-info", ".data"))
        }


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    return [line.removeprefix("Requires-Dist: ") for line in lines if "Requires-Dist" in line]


def test_the_client_wheel_installs_only_names_the_project_owns(wheels: dict[str, Path]) -> None:
    assert _top_level_names(wheels["client"]) == {"agent_sessions_client", "agentsessions"}


def test_the_server_wheel_installs_only_names_the_project_owns(wheels: dict[str, Path]) -> None:
    assert _top_level_names(wheels["server"]) == {"agent_sessions"}


def test_the_server_wheel_carries_the_redis_scripts(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["server"]) as archive:
        scripts = {
            Path(name).name
            for name in archive.namelist()
            if name.startswith("agent_sessions/store/redis/scripts/")
        }

    assert {"prelude.lua", "begin_turn.lua", "finish_turn.lua"} <= scripts


def test_the_client_needs_only_grpcio_protobuf_and_googleapis_common_protos(
    wheels: dict[str, Path],
) -> None:
    required = {
        requirement.split(">")[0].split("=")[0].split("<")[0].strip()
        for requirement in _requirements(wheels["client"])
        if "extra ==" not in requirement
    }

    assert required == {"grpcio", "protobuf", "googleapis-common-protos"}


def test_the_client_installs_beside_openai_agents_and_google_adk_and_uninstalls_cleanly(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Venv(tmp_path / "venv")
    env.pip("install", f"{wheels['client']}[openai-agents,adk]")

    imported = env.python(
        "import agent_sessions_client, agents, google.adk\n"
        "from agent_sessions_client.openai_agents import GrpcSession\n"
        "from agent_sessions_client.adk import GrpcSessionService\n"
        "from agents import Agent\n"
        "from agentsessions.sessions.v1 import sessions_pb2\n"
        "print(sessions_pb2.DESCRIPTOR.package)"
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "agentsessions.sessions.v1"

    env.pip("uninstall", "-y", "agent-sessions-client")
    after = env.python("from agents import Agent; import google.adk")
    assert after.returncode == 0, after.stderr


def test_importing_the_client_imports_no_agent_framework() -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, agent_sessions_client, agent_sessions_client.cli\n"
            "print(sorted({'agents', 'google.adk', 'openai'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    assert imported.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def server_venv(
    wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Venv]:
    env = Venv(tmp_path_factory.mktemp("server") / "venv")
    env.pip("install", "--find-links", str(wheels["client"].parent), str(wheels["server"]))
    yield env


def test_the_server_serves_from_its_wheel_alone(server_venv: Venv) -> None:
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [str(server_venv.bin / "session-server"), "--address", address],
        # Run from elsewhere, so that nothing of the checkout is importable.
        cwd=server_venv.bin,
        env={k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(address)
        import grpc

        with grpc.insecure_channel(address) as channel:
            session = sessions_pb2_grpc.SessionServiceStub(channel).CreateSession(
                sessions_pb2.CreateSessionRequest(user_id="u", agent_id="echo"), timeout=5
            )
        assert session.session_id
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_the_lean_server_leaves_out_openai_and_the_dev_toolchain(server_venv: Venv) -> None:
    present = server_venv.python(
        "import importlib.util as u\n"
        "names = ['openai', 'grpc_tools', 'pytest', 'mypy', 'ruff', 'hypothesis', 'build']\n"
        "print(' '.join(n for n in names if u.find_spec(n)))"
    )

    assert present.stdout.strip() == ""


def test_an_openai_agent_without_the_extra_is_a_startup_error_naming_it(
    server_venv: Venv,
) -> None:
    result = subprocess.run(
        [str(server_venv.bin / "session-server"), "--address", "127.0.0.1:0"],
        cwd=server_venv.bin,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SESSIONS_")},
            "SESSIONS_AGENTS": '{"gpt": {"kind": "openai", "base_url": "http://x/v1", '
            '"model": "m"}}',
        },
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "agent-sessions[openai]" in result.stderr
    assert "Traceback" not in result.stderr
