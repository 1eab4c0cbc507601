"""A full disk under switchyardd's state directory (a small tmpfs mounted for the test, filled by a file):
what a user relies on is that the proxy keeps serving, the forward instance waits (`retrying`, reason
`spool_full`, the kernel's "No space left on device" in its error and what to do) instead of failing or
losing a change, that it goes on by itself once there is room, and that a daemon killed meanwhile restarts
from intact state files. Skipped where a tmpfs cannot be mounted (not root)."""

from __future__ import annotations

import os
import subprocess

import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import app_conn, app_user, assert_equal_eventually, instance, locked, one, wait_for, wait_state


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt, leave: int) -> int:
    """Writes mnt/filler until `leave` bytes are free; returns its size."""
    st = os.statvfs(mnt)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    return size


def on_small_disk(small_disk, daemon, mariadb_pair, db, pname):
    """A daemon whose state_dir is on the small disk, its forward instance running with one row applied, then
    the disk filled up to 64 KiB. Returns it and an application connection."""
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(255))", database=db)
    app_user(mariadb_pair, db)
    state = small_disk / "state"
    state.mkdir()
    d = daemon(pair=pname, objects=f"{db}.*", global_opts={"state_dir": str(state)})
    wait_state(d, pname, "running")
    c = app_conn(d, db)
    one(c, "INSERT INTO t VALUES (0, 'before')")
    assert_equal_eventually(mariadb_pair, db)
    fill(small_disk, leave=64 * 1024)
    return d, c


def test_a_full_disk_makes_the_forward_instance_wait_and_loses_nothing(small_disk, daemon, mariadb_pair,
                                                                        fresh):  # noqa: F811
    dr = mariadb_pair.dr
    pname = f"d{fresh}"
    d, c = on_small_disk(small_disk, daemon, mariadb_pair, fresh, pname)
    # DR's writer held back (a DR transaction locks the table): nothing the spool holds can be dropped
    with locked(dr, fresh, "SELECT * FROM t FOR UPDATE"):
        for n in range(40):                      # ~40 x 20 rows of ~260 bytes: far more than 64 KiB
            one(c, f"INSERT INTO t SELECT seq + {1 + n * 20}, REPEAT('x', 255) FROM seq_1_to_20")
        st = wait_for(lambda: instance(d, pname).get("reason") == "spool_full" and instance(d, pname)["last_error"]
                      and instance(d, pname), 60, "spool_full on the full disk")
        assert st["state"] == "retrying", st
        assert "No space left on device" in st["last_error"], st
        # the proxy does not need the disk: clients go on, and the instance has not failed
        for n in range(5):
            one(c, f"INSERT INTO t VALUES ({10000 + n}, 'while the disk is full')")
        assert one(c, "SELECT COUNT(*) FROM t WHERE id >= 10000") == ((5,),)
        # killed while the disk is full: its state files are whole (written by rename), it starts again
        d.kill9()
        d.start()
        c = app_conn(d, fresh)                   # (a new port: the listener's is 0)
        one(c, "INSERT INTO t VALUES (10005, 'after the restart, the disk still full')")
        # reopened, it waits again: its writer is held, so nothing it applied can be freed; the operator
        # makes room, as the message says
        st = wait_for(lambda: "free space on that file system" in (instance(d, pname)["last_error"] or "") and
                      instance(d, pname), 30, "waiting again after kill -9 on the full disk")
        assert st["state"] == "retrying" and st["reason"] == "spool_full", st
    (small_disk / "filler").unlink()
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    wait_state(d, pname, "running")
    one(c, "INSERT INTO t VALUES (20000, 'after')")
    assert_equal_eventually(mariadb_pair, fresh)
    assert instance(d, pname)["last_error"] in (None, ""), instance(d, pname)


def test_a_full_disk_frees_the_applied_part_of_the_spool_by_itself(small_disk, daemon, mariadb_pair,
                                                                    fresh):  # noqa: F811
    """The disk stays full (64 KiB left) while clients write ~200 KiB of changes. An append that hits
    ENOSPC inside a transaction leaves the transaction's first records in a segment the writer cannot drop
    (it applies nothing of a transaction before its commit record, which cannot be written); before, the
    forward instance then waited for the operator for good. Now the spool punches the applied part of that
    segment out while the disk is full, and the instance goes on by itself: DR equals business with the
    filler still there."""
    pname = f"e{fresh}"
    d, c = on_small_disk(small_disk, daemon, mariadb_pair, fresh, pname)
    for n in range(40):                          # ~40 x 20 rows of ~260 bytes: far more than 64 KiB
        one(c, f"INSERT INTO t SELECT seq + {1 + n * 20}, REPEAT('x', 255) FROM seq_1_to_20")
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    assert (small_disk / "filler").exists()
    wait_state(d, pname, "running")
    assert os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < 1024 * 1024
