"""Capacity settings: the defaults derived from the machine, and the live
configuration's checks and storage of them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core_service import live_config, machine
from core_service.config import CoreConfig
from core_service.db.engine import make_engine, make_sessionmaker
from core_service.db.migrations import upgrade
from core_service.domain.live_config import LiveConfig
from core_service.errors import InvalidArgument

GIB = 1024**3


def test_defaults_come_from_memory_and_cores() -> None:
    sized = machine.derive(cores=2, available_bytes=24 * GIB)
    # Half of 24 GiB at 110 MiB a process.
    assert sized.max_live_processes == 111
    assert sized.max_running_turns == 8 and sized.max_queued_turns == 32
    assert sized.max_concurrent_starts == 2
    small = machine.derive(cores=16, available_bytes=1 * GIB)
    # A small box: the running cap never exceeds the live one.
    assert small.max_live_processes == 4 and small.max_running_turns == 4


def test_meminfo_is_read_in_bytes(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text("MemTotal: 24576000 kB\nMemAvailable: 20480000 kB\nHugePages_Total: 0\n")
    info = machine.meminfo(path)
    assert info["MemAvailable"] == 20480000 * 1024 and info["HugePages_Total"] == 0


def _config(**fields: Any) -> LiveConfig:
    config = live_config.defaults(CoreConfig(data_dir=Path("/tmp/x"), database_url="sqlite://"))
    return replace(config, **fields)


def test_running_turns_may_not_exceed_live_processes() -> None:
    live_config.validate(_config(max_live_processes=4, max_running_turns=4), set())
    with pytest.raises(InvalidArgument) as refused:
        live_config.validate(_config(max_live_processes=4, max_running_turns=5), set())
    assert refused.value.param == "max_running_turns"
    with pytest.raises(InvalidArgument) as refused:
        live_config.validate(_config(max_live_processes=0), set())
    assert refused.value.param == "max_live_processes"


def test_a_queue_of_zero_is_stored_as_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    base = _config(max_queued_turns=32)
    store = live_config.LiveConfigStore(make_sessionmaker(engine), base)
    store.update(_config(max_queued_turns=0), ["max_queued_turns"], "test", 0, set())
    again = live_config.LiveConfigStore(make_sessionmaker(engine), base)
    again.refresh()
    assert again.current.config.max_queued_turns == 0
    engine.dispose()


def test_a_cgroup_memory_limit_bounds_the_memory_available(tmp_path: Path) -> None:
    membership = tmp_path / "cgroup"
    limited = tmp_path / "fs" / "memory" / "box"
    limited.mkdir(parents=True)
    (limited / "memory.limit_in_bytes").write_text(f"{4 * GIB}\n")
    (limited / "memory.usage_in_bytes").write_text(f"{1 * GIB}\n")
    membership.write_text("9:name=systemd:/\n4:memory:/box\n0::/\n")
    assert machine.cgroup_room(tmp_path / "fs", membership) == 3 * GIB
    unified = tmp_path / "fs" / "app"
    unified.mkdir()
    (unified / "memory.max").write_text("max\n")
    (unified / "memory.current").write_text("100\n")
    membership.write_text("0::/app\n")
    assert machine.cgroup_room(tmp_path / "fs", membership) is None
    (unified / "memory.max").write_text(f"{2 * GIB}\n")
    assert machine.cgroup_room(tmp_path / "fs", membership) == 2 * GIB - 100
