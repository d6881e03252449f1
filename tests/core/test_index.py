"""The session index: format, UUIDv7 ids, lookups, pruning, moves, atomicity, concurrency."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import uuid_utils

from vibebox_core import paths
from vibebox_core.errors import SessionIndexError, SessionNotFoundError
from vibebox_core.index.file import render_index
from vibebox_core.index.ids import (
    new_session_id,
    read_session_id_file,
    short_ids,
    validate_session_id,
)
from vibebox_core.index.sessions import SessionIndex

REPO = Path(__file__).resolve().parents[2]
UUID7 = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


@pytest.fixture
def index() -> SessionIndex:
    return SessionIndex()


@pytest.fixture
def projects(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path / f"p{i}" for i in range(3)]
    for directory in dirs:
        directory.mkdir()
    return dirs


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------------------------------------
# Ids and format


def test_new_ids_are_uuid7_rfc_variant() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        parsed = uuid_utils.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid_utils.RFC_4122
        assert validate_session_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        str(uuid_utils.uuid4()),
        "019bf290-cccc-7c23-1a1d-dce7e6d40693",  # variant bits 0b0...: NCS, not RFC
        UUID7.upper(),
        UUID7.replace("-", ""),
    ],
)
def test_invalid_ids(value: str) -> None:
    with pytest.raises(ValueError):
        validate_session_id(value)


def test_index_format_is_exactly_the_design(index: SessionIndex, projects: list[Path]) -> None:
    entry = index.create(projects[0])
    index.touch(entry.id, datetime(2026, 11, 27, 11, 15, tzinfo=timezone(timedelta(hours=1))))
    text = index.path.read_text()
    assert index.path == paths.sessions_index_path()
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == [
        "[[sessions]]",
        f'id = "{entry.id}"',
        f'directory = "{projects[0]}"',
        "last_active = 2026-11-27T10:15:00Z",
    ]
    data = tomllib.loads(text)
    assert data["sessions"][0]["last_active"] == datetime(2026, 11, 27, 10, 15, tzinfo=UTC)


def test_create_writes_the_cache(index: SessionIndex, projects: list[Path]) -> None:
    entry = index.create(projects[0])
    cache = projects[0] / ".vibebox"
    assert (cache / "session-id").read_text().strip() == entry.id
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert entry.directory == projects[0].resolve()
    assert entry.last_active.tzinfo is not None
    assert abs(datetime.now(UTC) - entry.last_active) < timedelta(seconds=5)


def test_one_session_per_directory(index: SessionIndex, projects: list[Path]) -> None:
    first = index.ensure(projects[0])
    assert index.ensure(projects[0]) == first
    assert index.ensure(str(projects[0]) + "/.") == first
    with pytest.raises(SessionIndexError, match="already has session"):
        index.create(projects[0])
    assert len(index.entries()) == 1


def test_create_needs_an_existing_directory(index: SessionIndex, tmp_path: Path) -> None:
    with pytest.raises(SessionIndexError, match="does not exist"):
        index.create(tmp_path / "nope")
    assert not index.path.exists()


def test_lookups(index: SessionIndex, projects: list[Path]) -> None:
    a, b = index.create(projects[0]), index.create(projects[1])
    assert index.get(a.id) == a
    assert index.find_by_directory(projects[1]) == b
    assert index.find_by_directory(projects[2]) is None
    assert index.resolve(b.id[:-1]) == b
    assert index.resolve(a.id.upper()) == a
    with pytest.raises(SessionNotFoundError):
        index.get(UUID7)
    with pytest.raises(SessionNotFoundError):
        index.resolve("zzzz")
    assert [e.id for e in index.entries()] == [a.id, b.id]


def test_resolve_ambiguous_prefix(index: SessionIndex, projects: list[Path]) -> None:
    a, b = index.create(projects[0]), index.create(projects[1])
    common = ""
    for x, y in zip(a.id, b.id, strict=True):
        if x != y:
            break
        common += x
    if len(common) < 4:
        pytest.skip("ids made in the same millisecond share a long prefix; these did not")
    with pytest.raises(SessionIndexError, match="matches 2 sessions"):
        index.resolve(common)


def test_touch_and_remove(index: SessionIndex, projects: list[Path]) -> None:
    a, b = index.create(projects[0]), index.create(projects[1])
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    index.touch(a.id, when)
    assert index.get(a.id).last_active == when
    index.touch(b.id)
    assert index.get(b.id).last_active >= b.last_active
    index.remove(a.id)
    assert [e.id for e in index.entries()] == [b.id]
    with pytest.raises(SessionNotFoundError):
        index.remove(a.id)
    with pytest.raises(SessionNotFoundError):
        index.touch(a.id)


def test_extra_keys_are_kept(index: SessionIndex, projects: list[Path]) -> None:
    a = index.create(projects[0])
    index.set_extra(a.id, "approved_policy", "sha256:abc")
    index.set_extra(a.id, "nested", {"k": [1, 2], "q": 'a"b'})
    # Another tool adds keys of its own by hand.
    index.path.write_text(index.path.read_text() + 'their_key = "theirs"\n')
    index.touch(a.id)
    entry = index.get(a.id)
    assert entry.extra == {
        "approved_policy": "sha256:abc",
        "nested": {"k": [1, 2], "q": 'a"b'},
        "their_key": "theirs",
    }
    assert 'their_key = "theirs"' in index.path.read_text()
    index.set_extra(a.id, "nested", None)
    assert "nested" not in index.get(a.id).extra
    with pytest.raises(ValueError):
        index.set_extra(a.id, "id", "x")
    with pytest.raises(ValueError):
        index.set_extra(a.id, "bad key", "x")
    with pytest.raises(ValueError):
        index.set_extra(a.id, "k", object())


def test_reads_datetimes_with_offsets_and_local(index: SessionIndex, projects: list[Path]) -> None:
    ids = [new_session_id() for _ in range(2)]
    for directory, session_id in zip(projects, ids, strict=False):
        (directory / ".vibebox").mkdir()
        (directory / ".vibebox" / "session-id").write_text(session_id)
    index.path.write_text(
        f'[[sessions]]\nid = "{ids[0]}"\ndirectory = "{projects[0]}"\n'
        "last_active = 2026-11-27T12:15:00+02:00\n"
        f'[[sessions]]\nid = "{ids[1]}"\ndirectory = "{projects[1]}"\n'
        "last_active = 2026-11-27T10:15:00\n"
    )
    times = [e.last_active for e in index.entries()]
    assert times == [datetime(2026, 11, 27, 10, 15, tzinfo=UTC)] * 2


def test_render_index_round_trips(index: SessionIndex, projects: list[Path]) -> None:
    index.create(projects[0])
    index.set_extra(index.entries()[0].id, "x", [1, "two", {"three": 3.0}])
    entries = index.entries()
    assert render_index(entries) == index.path.read_text()


# ---------------------------------------------------------------------------------------------
# Pruning, moves, copies


def test_entries_whose_cache_is_gone_are_pruned(index: SessionIndex, projects: list[Path]) -> None:
    a, b = index.create(projects[0]), index.create(projects[1])
    shutil.rmtree(projects[0] / ".vibebox")
    assert [e.id for e in index.entries()] == [b.id]
    assert [e.id for e in index.last_pruned] == [a.id]
    assert a.id not in index.path.read_text()  # written back
    assert index.entries() and index.last_pruned == []


def test_prune_of_a_deleted_directory(index: SessionIndex, projects: list[Path]) -> None:
    a = index.create(projects[0])
    shutil.rmtree(projects[0])
    with pytest.raises(SessionNotFoundError):
        index.get(a.id)
    assert [e.id for e in index.last_pruned] == [a.id]
    assert a.id not in index.path.read_text()  # pruning stands although get() failed


def test_moved_project_keeps_its_session(
    index: SessionIndex, projects: list[Path], tmp_path: Path
) -> None:
    a = index.create(projects[0])
    index.set_extra(a.id, "approved_policy", "sha256:1")
    moved = tmp_path / "renamed"
    projects[0].rename(moved)
    found = index.find_by_directory(moved)
    assert found is not None and found.id == a.id and found.directory == moved
    assert found.extra == {"approved_policy": "sha256:1"}
    assert index.last_pruned == []
    assert [(e.id, e.directory) for e in index.entries()] == [(a.id, moved)]


def test_moved_project_after_a_prune_gets_its_id_back(
    index: SessionIndex, projects: list[Path], tmp_path: Path
) -> None:
    a = index.create(projects[0])
    moved = tmp_path / "renamed"
    projects[0].rename(moved)
    assert index.entries() == []  # `vibebox list` elsewhere dropped it
    assert index.ensure(moved).id == a.id


def test_copied_project_gets_a_new_session(
    index: SessionIndex, projects: list[Path], tmp_path: Path
) -> None:
    a = index.create(projects[0])
    copy = tmp_path / "copy"
    shutil.copytree(projects[0], copy)
    b = index.ensure(copy)
    assert b.id != a.id
    assert read_session_id_file(b.project) == b.id
    assert read_session_id_file(a.project) == a.id
    assert {e.directory for e in index.entries()} == {projects[0], copy}


def test_lost_session_id_file_is_restored(index: SessionIndex, projects: list[Path]) -> None:
    a = index.create(projects[0])
    (projects[0] / ".vibebox" / "session-id").unlink()
    assert index.ensure(projects[0]) == a
    assert read_session_id_file(a.project) == a.id


# ---------------------------------------------------------------------------------------------
# Damage and atomicity


def test_damaged_index_is_never_overwritten(index: SessionIndex, projects: list[Path]) -> None:
    index.create(projects[0])
    damaged = index.path.read_bytes().replace(b"\n[[sessions]]\n", b"\n[[sessions]\n", 1)
    index.path.write_bytes(damaged)
    for action in (
        lambda: index.ensure(projects[1]),
        index.entries,
        lambda: index.find_by_directory(projects[0]),
    ):
        with pytest.raises(SessionIndexError) as caught:
            action()
        assert str(index.path) in str(caught.value) and "line 3" in str(caught.value)
        assert caught.value.hint
    assert index.path.read_bytes() == damaged
    assert not (projects[1] / ".vibebox").exists()


def test_a_key_set_twice_in_the_index_is_damage(index: SessionIndex, projects: list[Path]) -> None:
    # tomlkit reports a key set twice as KeyAlreadyPresent (< 0.15.3) or ParseError (0.15.3+).
    index.create(projects[0])
    text = index.path.read_text()
    line = next(x for x in text.splitlines() if x.startswith("directory"))
    damaged = text.replace(line, f"{line}\n{line}", 1).encode()
    index.path.write_bytes(damaged)
    with pytest.raises(SessionIndexError, match="already exists") as caught:
        index.entries()
    assert str(index.path) in str(caught.value) and caught.value.hint
    assert index.path.read_bytes() == damaged


def test_no_temp_files_are_left_and_stale_ones_go(
    index: SessionIndex, projects: list[Path]
) -> None:
    stale = index.path.parent / ".sessions.toml.99999.tmp"
    index.path.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("half")
    a = index.create(projects[0])
    index.touch(a.id)
    names = sorted(p.name for p in index.path.parent.iterdir())
    assert names == [paths.SESSIONS_LOCK, paths.SESSIONS_INDEX]


def test_empty_or_missing_index_is_empty(index: SessionIndex) -> None:
    assert index.entries() == []
    index.path.write_text("")
    assert index.entries() == []
    assert index.path.read_text() == ""


def test_unwritable_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SessionIndexError, match="cannot open the session index lock"):
        SessionIndex(blocker / "sessions.toml").entries()


# ---------------------------------------------------------------------------------------------
# Several processes at once

_WORKER = """
import sys
from vibebox_core.index.sessions import SessionIndex
directory, rounds = sys.argv[1], int(sys.argv[2])
index = SessionIndex()
entry = index.ensure(directory)
for i in range(rounds):
    index.touch(entry.id)
    index.set_extra(entry.id, "round", i)
    assert index.find_by_directory(directory).id == entry.id
print(entry.id)
"""


def test_sixteen_processes_at_once(tmp_path: Path) -> None:
    dirs = [tmp_path / f"proj{i:02}" for i in range(16)]
    for directory in dirs:
        directory.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(directory), "5"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for directory in dirs
    ]
    ids = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        ids.append(out.strip())
    entries = SessionIndex().entries()
    assert len(entries) == 16
    assert {e.id for e in entries} == set(ids)
    assert {e.directory for e in entries} == set(dirs)
    for entry in entries:
        validate_session_id(entry.id)
        assert entry.extra == {"round": 4}
        assert read_session_id_file(entry.project) == entry.id
    assert not list(paths.vibebox_home().glob("*.tmp"))


_LOOPER = """
import sys
from vibebox_core.index.sessions import SessionIndex
index = SessionIndex()
entries = [index.ensure(d) for d in sys.argv[1:]]
i = 0
while True:
    for entry in entries:
        index.set_extra(entry.id, "counter", i)
        index.touch(entry.id)
    i += 1
"""


def test_writer_killed_mid_loop_leaves_a_parseable_index(tmp_path: Path) -> None:
    dirs = [tmp_path / f"p{i}" for i in range(4)]
    for directory in dirs:
        directory.mkdir()
    index = SessionIndex()
    writer = subprocess.Popen([sys.executable, "-c", _LOOPER, *map(str, dirs)], env=_env())
    try:
        deadline = time.monotonic() + 30
        counter = 0
        # Readers never see a half-written file: every read while the writer runs parses.
        while counter < 30:
            assert writer.poll() is None, "the writer died"
            assert time.monotonic() < deadline, "the writer made no progress"
            if index.path.exists():
                data = tomllib.loads(index.path.read_text())
                counters = [s.get("counter", 0) for s in data.get("sessions", [])]
                counter = min(counters) if len(counters) == 4 else 0
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    text = index.path.read_text()
    assert re.search(r"^\[\[sessions\]\]$", text, re.M)
    entries = index.entries()  # parses, validates, and the lock is free again
    assert {e.directory for e in entries} == set(dirs)
    index.touch(entries[0].id)
    assert not list(paths.vibebox_home().glob("*.tmp"))


def test_short_ids_are_8_digits_unless_another_id_shares_them() -> None:
    a = "019bf290-0001-7c23-ba1d-dce7e6d40693"
    b = "019bf290-0002-7c23-ba1d-dce7e6d40693"
    c = "019c0000-0001-7c23-ba1d-dce7e6d40693"
    d = "019bf290-0001-7c23-ba1d-000000000000"  # shares even the second group with a
    assert short_ids([c]) == {c: "019c0000"}
    assert short_ids([a, b, c]) == {a: "019bf290-0001", b: "019bf290-0002", c: "019c0000"}
    shorts = short_ids([a, b, c, d])
    assert shorts[a] == "019bf290-0001-7c23-ba1d-dce7e6d40693"
    assert shorts[d] == "019bf290-0001-7c23-ba1d-000000000000"
    assert shorts[b] == "019bf290-0002"
    # Each is a prefix of its own id only: what `vibebox delete` accepts.
    for sid, short in shorts.items():
        assert [other for other in (a, b, c, d) if other.startswith(short)] == [sid]


def test_new_sessions_made_together_get_distinct_short_ids(
    index: SessionIndex, projects: list[Path]
) -> None:
    made = [index.create(p).id for p in projects[:3]]
    shorts = short_ids(made)
    assert len(set(shorts.values())) == 3
    assert all(made_id.startswith(shorts[made_id]) for made_id in made)
