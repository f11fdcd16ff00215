"""Node identity (livechannel.fleet.node): kept in the data directory across restarts,
overridable, and the rule by which a restarted worker finds its own earlier pushes."""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from livechannel.config import ConfigError, load
from livechannel.fleet.node import (
    NODE_ID_FILE,
    NodeIdentity,
    NodeIdError,
    WorkerName,
    earlier_lives,
)


def test_the_id_is_created_once_and_kept(tmp_path: Path) -> None:
    first = NodeIdentity.load(tmp_path / "data")
    assert (tmp_path / "data" / NODE_ID_FILE).read_text().strip() == first
    assert NodeIdentity.load(tmp_path / "data") == first
    assert NodeIdentity.load(tmp_path / "other") != first  # another data dir, another node
    assert not [p for p in (tmp_path / "data").iterdir() if p.name != NODE_ID_FILE]


def test_an_override_wins_and_is_checked(tmp_path: Path) -> None:
    NodeIdentity.load(tmp_path)
    assert NodeIdentity.load(tmp_path, "edge-7") == "edge-7"
    for bad in ("a/b", "x@y", "with space", "-lead", "é", "n" * 65):
        with pytest.raises(NodeIdError):
            NodeIdentity.load(tmp_path, bad)


def test_a_damaged_id_file_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    (tmp_path / NODE_ID_FILE).write_text("two words\n")
    with pytest.raises(NodeIdError, match=NODE_ID_FILE):
        NodeIdentity.load(tmp_path)


def _load(data_dir: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(NodeIdentity.load(Path(data_dir)))


def test_processes_racing_on_a_new_data_dir_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(str(tmp_path), out)) for _ in range(4)]
    for p in procs:
        p.start()
    ids = {out.get(timeout=10) for _ in procs}
    for p in procs:
        p.join(10)
    assert len(ids) == 1


def test_node_id_from_toml_env_and_flag(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('node_id = "from-toml"\n')
    assert load(str(toml), {}, {}).node_id == "from-toml"
    assert load(str(toml), {"LIVECHANNEL_NODE_ID": "from-env"}, {}).node_id == "from-env"
    env = {"LIVECHANNEL_NODE_ID": "from-env"}
    assert load(str(toml), env, {"node_id": "from-flag"}).node_id == "from-flag"
    with pytest.raises(ConfigError, match="node_id"):
        load(None, {"LIVECHANNEL_NODE_ID": "no/slash"}, {})


def test_worker_names_round_trip() -> None:
    me = WorkerName.here("edge-7", 2)
    assert str(me) == f"edge-7/2@{socket.gethostname()}:{os.getpid()}"
    assert WorkerName.parse(str(me)) == me
    assert WorkerName.parse("oldhost:123") is None  # rows from before node ids


def test_a_worker_ends_its_nodes_earlier_lives_only() -> None:
    me = WorkerName("n1", 1, "host-b", 50)
    alive = {"n1/0@host-b:41", "n1/1@host-b:50"}.__contains__  # this run's two workers
    owners = [
        "n1/1@host-a:40",  # this worker before a restart on a recreated container
        "n1/1@host-b:50",  # same host and pid (a container's pid 1 again)
        "n1/0@host-b:41",  # a sibling of this run, alive: its own business
        "n1/0@host-b:39",  # the sibling's earlier run, its process gone: ended at once
        "n2/1@host-b:60",  # another node
        "host-b:70",  # a row from before node ids: the stale sweep's
    ]
    assert earlier_lives(owners, me, 2, alive) == [
        "n1/1@host-a:40", "n1/1@host-b:50", "n1/0@host-b:39",
    ]  # fmt: skip
    # Indexes the node no longer runs (restarted with fewer workers) are ended too.
    assert earlier_lives(["n1/3@host-b:41"], me, 2, lambda owner: True) == ["n1/3@host-b:41"]
