"""Redis run with the managers' own flags (launch.RedisServer) survives SIGKILL:
a restart on the same directory loses no application, model, link or current
version; the backup file and the restore command bring back a store that lost
its data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from clipper_core import launch
from clipper_core.admin.backup import export_configuration, write_backup
from clipper_core.admin.backup import main as backup_main
from clipper_core.admin.service import AdminService
from clipper_core.admin.wire import AddApp, AddModel, AddModelLinks, SetModelVersion
from clipper_core.plugins import open_store

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int, data: Path, password: str) -> subprocess.Popen[bytes]:
    server = launch.RedisServer(port=port, data_dir=str(data), bind="127.0.0.1")
    proc = subprocess.Popen(server.command(), env={**os.environ,
                                                   "CLIPPER_STORE_PASSWORD": password},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _configure(store: object) -> None:
    svc = AdminService(store, apply_timeout_s=0)  # type: ignore[arg-type]
    svc.add_app(AddApp(name="app", input_type="doubles", default_output="-1",
                       latency_slo_micros=100000))
    for version in ("1", "2"):
        svc.add_model(AddModel(model_name="m", model_version=version, input_type="doubles",
                               image=f"reg.local/m:{version}"))
    svc.set_model_version(SetModelVersion(model_name="m", model_version="1"))
    svc.add_model_links(AddModelLinks(app_name="app", model_names=("m",)))


def test_sigkill_and_restart_with_the_managers_flags_loses_nothing(tmp_path: Path) -> None:
    port, password = _port(), "pw-" + os.urandom(8).hex()
    url = f"redis://:{password}@127.0.0.1:{port}/0?prefix=durable"
    proc = _start(port, tmp_path, password)
    try:
        with pytest.raises(Exception, match="(?i)auth"):  # a password is required
            open_store(f"redis://127.0.0.1:{port}/0?prefix=durable").list_applications()
        store = open_store(url)
        _configure(store)
        before = export_configuration(store)
        store.close()
        time.sleep(1.5)  # appendfsync everysec
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc = _start(port, tmp_path, password)
        store = open_store(url)
        after = export_configuration(store)
        store.close()
    finally:
        proc.kill()
        proc.wait(5)
    assert after == before
    assert [a["linked_models"] for a in after["applications"]] == [["m"]]
    assert [(m["model_version"], m["is_current_version"]) for m in after["models"]] == \
        [("1", True), ("2", False)]


def test_backup_file_and_restore_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         ) -> None:
    source = open_store("memory://")
    _configure(source)
    backup = tmp_path / "backup.json"
    write_backup(backup, source)
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    db = tmp_path / "restored.db"
    assert backup_main(["restore", str(backup), "--store", f"sqlite:///{db}"]) == 0
    assert "restored: 3 added" in capsys.readouterr().out
    restored = open_store(f"sqlite:///{db}")
    try:
        exported = export_configuration(restored)
        original = export_configuration(source)
        # the same configuration, at a revision past the backup's (see test_config_sync)
        assert exported["revision"] > original["revision"]
        assert {**exported, "revision": 0} == {**original, "revision": 0}
        # restoring again adds nothing and changes nothing
        assert backup_main(["restore", str(backup), "--store", f"sqlite:///{db}"]) == 0
        assert export_configuration(restored) == exported
    finally:
        restored.close()
        source.close()
    data = json.loads(backup.read_text())
    assert data["format"] == 1 and len(data["models"]) == 2
