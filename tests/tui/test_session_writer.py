"""The TUI's session saves leave the disk to a thread of their own: a write whose fsync takes
seconds (a busy network home directory) never holds the UI thread, a failed write is a notice,
and quitting waits for the last write."""

from __future__ import annotations

import json
import threading

from latency_tui.core.measurement import ConfigResult, Throughput
from latency_tui.core.specs import RunConfig
from latency_tui.tui.sessions import SessionKeeper, SessionWriter


class StuckDisk:
    """A write that blocks until the test lets it go, counting what it was asked to write."""

    def __init__(self, fail: bool = False):
        self.release = threading.Event()
        self.started = threading.Event()
        self.written = []
        self.fail = fail

    def __call__(self, text, path):
        self.started.set()
        assert self.release.wait(30), "the test never released the disk"
        if self.fail:
            raise OSError(28, "No space left on device")
        path.write_text(text)
        self.written.append(json.loads(text))


def keeper_with(tmp_path, disk, notices):
    keeper = SessionKeeper(lambda: tmp_path / "sessions", lambda level, text: notices.append(
        (level, text)), writer=SessionWriter(disk))
    keeper.session.preset = {"name": "quick"}
    return keeper


def add_result(keeper, batch):
    keeper.session.results.append(ConfigResult(
        RunConfig(device="fake", batch_size=batch), "finished", samples=10, duration_s=1.0,
        throughput=Throughput(10.0, 10.0)))


def test_autosave_returns_while_the_disk_is_still_writing(tmp_path):
    disk, notices = StuckDisk(), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    path = keeper.autosave()
    # The UI thread is back although the write has not ended (and cannot, until released).
    assert disk.started.wait(10) and not disk.written
    assert path is not None and path.parent == tmp_path / "sessions" and not path.exists()
    assert notices == [("info", f"session saved to {path} (after every configuration)")]
    assert keeper.saved_paths == []  # the goodbye names only files written
    disk.release.set()
    assert keeper.writer.flush(10)
    keeper.report()
    assert keeper.saved_paths == [path] and len(json.loads(path.read_text())["results"]) == 1


def test_saves_queued_behind_a_slow_write_coalesce_to_the_newest(tmp_path):
    disk, notices = StuckDisk(), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    keeper.autosave()
    assert disk.started.wait(10)
    for batch in (2, 4, 8):  # three configurations finish while the first write is stuck
        add_result(keeper, batch)
        keeper.autosave()
    disk.release.set()
    assert keeper.writer.flush(10)
    # The first text, then only the newest: never an older one after a newer one.
    assert [len(s["results"]) for s in disk.written] == [1, 4]
    assert len(json.loads(keeper.path.read_text())["results"]) == 4


def test_a_failed_write_is_an_error_notice_and_the_next_run_of_the_ui_goes_on(tmp_path):
    disk, notices = StuckDisk(fail=True), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    path = keeper.autosave()
    disk.release.set()
    assert keeper.writer.flush(10)
    keeper.report()
    assert ("error", f"could not save the session to {path}: [Errno 28] No space left on device"
            ) in notices
    assert keeper.saved_paths == []


def test_quitting_waits_for_the_last_write(tmp_path):
    disk, notices = StuckDisk(), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    threading.Timer(0.2, disk.release.set).start()
    path = keeper.autosave(wait=True)
    assert path.exists() and keeper.saved_paths == [path]


def test_a_session_that_cannot_be_written_as_json_is_a_notice_not_an_exception(tmp_path):
    disk, notices = StuckDisk(), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    keeper.session.host["bad"] = float("nan")  # JSON has no NaN: the file would not load
    assert keeper.autosave() is None
    assert notices and notices[0][0] == "error" and "could not save the session" in notices[0][1]
    assert not disk.started.is_set()


def test_quitting_waits_for_an_earlier_sessions_write_when_the_new_one_is_empty(tmp_path):
    """Session A's last write is still on a slow disk when a run of another preset begins a new,
    empty session, and the user quits: the app left before A's write landed."""
    from latency_tui.core.recorder import SessionRecorder

    disk, notices = StuckDisk(), []
    keeper = keeper_with(tmp_path, disk, notices)
    add_result(keeper, 1)
    first = keeper.autosave()
    keeper.recorder = SessionRecorder()  # the next run's session: nothing in it yet
    threading.Timer(0.2, disk.release.set).start()
    assert keeper.autosave(wait=True) is None
    assert first.exists() and keeper.saved_paths == [first]


def test_two_sessions_begun_within_one_second_get_two_files(tmp_path):
    """The name is chosen when the first write is submitted, before the file exists: a second
    session of the same preset in the same second took the same name and overwrote the first."""
    keeper = keeper_with(tmp_path, StuckDisk(), [])
    assert keeper.default_path("quick") != keeper.default_path("quick")
