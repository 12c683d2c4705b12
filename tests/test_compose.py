"""docker-compose.yml and the Dockerfile agree with the code (no Docker engine
here, so the files are checked, not run)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from liveroom.cli import main
from liveroom.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("build")}


def test_our_services_are_built_from_the_dockerfile():
    assert set(OURS) >= {"topic-init", "worker", "highlight-worker", "replay"}
    for svc in OURS.values():
        assert svc["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["liveroom"]' in dockerfile
    for src in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (REPO / src).exists(), f"Dockerfile copies missing {src}"


def test_commands_exist_in_the_cli():
    for name, svc in OURS.items():
        command = svc["command"]
        assert command[0] in main.commands, f"{name}: liveroom has no command {command[0]!r}"
        ctx = main.commands[command[0]].make_context(command[0], list(command[1:]), resilient_parsing=True)
        assert ctx is not None
        for opt in (a for a in command[1:] if a.startswith("--")):
            assert any(opt in p.opts for p in main.commands[command[0]].params), f"{name}: unknown option {opt}"


def test_environment_names_match_the_settings():
    fields = {f"LIVEROOM_{name.upper()}" for name in Settings.model_fields}
    for name, svc in OURS.items():
        for var, value in svc["environment"].items():
            assert var in fields, f"{name}: {var} is not a setting"
            Settings(**{var.removeprefix("LIVEROOM_").lower(): value})  # and its value parses


def test_kafka_is_single_node_kraft_with_a_healthcheck():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert kafka["healthcheck"]["test"]
    bootstrap = OURS["worker"]["environment"]["LIVEROOM_KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap == env["KAFKA_ADVERTISED_LISTENERS"].split("//")[1]


def test_startup_order_and_scaling():
    assert SERVICES["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    worker = SERVICES["worker"]
    assert "container_name" not in worker  # --scale worker=N must work
    partitions = int(worker["environment"]["LIVEROOM_KAFKA_PARTITIONS"])
    assert partitions >= 2
    (published,) = worker["ports"]  # a host port range: one port per worker, as many as partitions
    hosts, container = published.split(":")
    lo, hi = map(int, hosts.split("-"))
    assert hi - lo + 1 >= partitions and container == worker["environment"]["LIVEROOM_KAFKA_WEB_PORT"]
    assert SERVICES["replay"]["profiles"] == ["replay"]
    assert SERVICES["replay"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_the_worker_healthcheck_asks_healthz_on_its_web_port():
    worker = SERVICES["worker"]
    probe = " ".join(worker["healthcheck"]["test"])
    env = worker["environment"]
    assert f"127.0.0.1:{env['LIVEROOM_KAFKA_WEB_PORT']}/healthz" in probe
    assert env["LIVEROOM_KAFKA_WEB_BIND"] == "0.0.0.0"  # else the published port reaches nothing


def test_every_writable_volume_is_a_folder_the_image_user_owns():
    """A new named volume takes the owner of the image's folder at its mount point:
    a folder the image does not create comes out root-owned, and the services run
    as the image's user."""
    dockerfile = (REPO / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, flags=re.M).group(1)
    created = set(re.findall(r"mkdir -p ([^&\n\\]+)", dockerfile)[0].split())
    owned = set(re.findall(rf"chown {user}(?::{user})? ([^&\n\\]+)", dockerfile)[0].split())
    for name, svc in OURS.items():
        for volume in svc.get("volumes", []):
            source, target, *mode = volume.split(":")
            assert target in created, f"{name}: the image has no folder {target}"
            if mode != ["ro"]:
                assert target in owned, f"{name}: {target} is written by the services but not owned by {user}"


def test_highlight_worker_reads_recordings_from_its_volume():
    svc = SERVICES["highlight-worker"]
    env = svc["environment"]
    mounts = {v.split(":")[1]: v for v in svc["volumes"]}
    assert env["LIVEROOM_RECORDINGS_DIR"] in mounts and mounts[env["LIVEROOM_RECORDINGS_DIR"]].endswith(":ro")
    assert env["LIVEROOM_CLIPS_DIR"] in mounts
    assert env["LIVEROOM_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
