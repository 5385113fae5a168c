"""Durability of on-disk state with real processes: a kernel SIGKILLed mid-run resumes losing
at most its chunks in flight; corrupt or truncated cache and spill files are reported, set
aside and rebuilt; two kernels share one cache; a read-only or full disk turns the cache and
the spill off (said once) and the run still returns its frame."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from dspex_lab import batch
from dspex_lab.batch.spill import ROW, Spill
from dspex_lab.cache import ResultCache, set_cache

KERNEL = str(Path(__file__).with_name("_kernel.py"))
pytestmark = pytest.mark.timeout(120)


def _kernel(url, rows, cache_dir, *args, **popen):
    env = {**os.environ, "DSPEX_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen([sys.executable, KERNEL, url, str(rows), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, **popen)


def _result(proc, timeout=90):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def _wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.05)


# -- a kernel killed mid-run --------------------------------------------------------------------

@pytest.mark.slow
def test_a_sigkilled_kernel_resumes_losing_at_most_the_chunks_in_flight(lm_server, tmp_path):
    rows, spill = 120, tmp_path / "spill"
    lm_server.configure(latency_ms=60)
    first = _kernel(lm_server.url, rows, tmp_path / "c", "--spill", spill, "--chunk", 10,
                    "--concurrency", 2)
    _wait_for(lambda: len(list(spill.glob("part-*.arrow"))) >= 3)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # its workers, if any outlived it
        os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    saved = Spill(spill, "?").load()  # what survived: complete parts only
    survived = saved.num_rows
    assert survived >= 30 and survived % 10 == 0 and survived < rows
    assert len(set(saved.column(ROW).to_pylist())) == survived  # no row twice

    lm_server.configure(latency_ms=0)
    lm_server.reset()
    import dspy  # the same run as the kernel's (same program, LM, options, rows): resumed

    lm = dspy.LM("openai/dspex-embedded", api_base=lm_server.url, api_key="x", cache=False,
                 num_retries=0)
    df = pd.DataFrame({"question": [f"What is {i} + 0?" for i in range(rows)]})
    again = batch.run("question -> answer", df, lm=lm, progress=False, cache=False, spill=spill,
                      resume=True, chunk_size=10, concurrency=2, max_retries=0)
    assert again["answer"].tolist() == [str(i) for i in range(rows)]  # none lost, in order
    assert (again["status"] == "ok").all() and len(again) == rows
    assert lm_server.stats()["requests"] == rows - survived  # only the lost rows again


def test_a_torn_or_corrupt_spill_part_is_reported_set_aside_and_recomputed(tmp_path):
    spill = Spill.open(tmp_path, "run1", 4, False, {})
    part = pa.table({"answer": ["a", "b"], "error": pa.nulls(2, pa.string()),
                     ROW: pa.array([0, 1], pa.int64())})
    spill.write(part)
    spill.write(part.set_column(2, ROW, pa.array([2, 3], pa.int64())))
    second = sorted(tmp_path.glob("part-*.arrow"))[-1]
    second.write_bytes(second.read_bytes()[:-40])  # a torn last record
    (tmp_path / ".part-000003.arrow.123.tmp").write_bytes(b"half")  # a write cut short
    with pytest.warns(RuntimeWarning, match=r"spill file .*part-000002\.arrow.* unreadable"):
        table = Spill.open(tmp_path, "run1", 4, True, {}).load()
    assert table.column(ROW).to_pylist() == [0, 1]
    assert (tmp_path / f"{second.name}.corrupt").exists() and not second.exists()
    assert not list(tmp_path.glob(".*.tmp"))
    again = Spill.open(tmp_path, "run1", 4, True, {})
    again.write(part.set_column(2, ROW, pa.array([2, 3], pa.int64())))  # numbering goes on
    assert again.load().column(ROW).to_pylist() == [0, 1, 2, 3]


def test_a_corrupt_manifest_is_reported_and_a_run_starts_over(tmp_path):
    Spill.open(tmp_path, "run1", 2, False, {}).write(
        pa.table({"answer": ["a"], "error": pa.nulls(1, pa.string()), ROW: [0]}))
    (tmp_path / "manifest.json").write_text('{"run_id": "ru')  # torn
    with pytest.warns(RuntimeWarning, match="manifest.json"):
        spill = Spill.open(tmp_path, "run1", 2, True, {})
    assert spill.load() is None  # a spill= path of unknown owner: not trusted
    assert json.loads((tmp_path / "manifest.json").read_text())["run_id"] == "run1"


# -- the result cache ---------------------------------------------------------------------------

def _filled(path, n=300):
    cache = ResultCache(path)
    cache.put_many({f"k{i}": {"answer": str(i), "pad": "x" * 200} for i in range(n)})
    cache._db.close()
    return n


def test_a_corrupt_cache_file_is_reported_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.warns(RuntimeWarning, match=r"result cache .*results\.sqlite.* is corrupt"):
        cache = ResultCache(path)
        assert cache.get("k") is None
    cache.put("k", {"answer": "1"})
    assert ResultCache(path).get("k") == {"answer": "1"}
    assert len(list(tmp_path.glob("results.sqlite.corrupt-*"))) == 1


def test_a_truncated_cache_file_never_crashes_nor_answers_wrong(tmp_path):
    path = tmp_path / "results.sqlite"
    n = _filled(path)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"results.sqlite{suffix}").unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = ResultCache(path)
        got = {i: cache.get(f"k{i}") for i in range(n)}
        cache.put("new", {"answer": "yes"})
    assert all(v is None or v["answer"] == str(i) for i, v in got.items())  # never wrong
    if any(v is None for v in got.values()):  # SQLite noticed: reported in one line
        assert any("results.sqlite" in str(w.message) for w in caught)
    assert ResultCache(path).get("new") == {"answer": "yes"}


_WRITER = """
import sys
from dspex_lab.cache import ResultCache
cache, me = ResultCache(sys.argv[1]), sys.argv[2]
for i in range(150):
    cache.put_many({f"{me}-{i}-{j}": [me, i, j] for j in range(5)}, remember=False)
    assert cache.get(f"{me}-{i}-0", remember=False) == [me, i, 0]
    cache.get(f"other-{i}-0", remember=False)
print("ok")
"""


def test_two_processes_share_one_cache_file_without_lock_errors(tmp_path):
    path = tmp_path / "results.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    outs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]
        assert "locked" not in err and "busy" not in err
    cache = ResultCache(path)
    assert len(cache) == 2 * 150 * 5
    assert cache.get("a-149-4") == ["a", 149, 4] and cache.get("b-0-0") == ["b", 0, 0]


@pytest.mark.slow
def test_two_kernels_run_at_once_against_one_cache_directory(lm_server, tmp_path):
    procs = [_kernel(lm_server.url, 60, tmp_path / "shared", "--cache", "--offset", off)
             for off in (0, 1)]
    results = [_result(p) for p in procs]
    for (res, err), off in zip(results, (0, 1), strict=True):
        assert res["answers"] == [str(i + off) for i in range(60)] and not res["errors"]
        assert "locked" not in err and not res["warnings"]
    assert len(ResultCache(tmp_path / "shared" / "results.sqlite")) == 120


# -- a disk that refuses writes -----------------------------------------------------------------

@pytest.fixture
def immutable_dir(tmp_path):
    """A directory nothing can be created in, root included (``chattr +i``)."""
    d = tmp_path / "ro"
    d.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)]).returncode:
        pytest.skip("chattr +i is not available here")
    yield d
    subprocess.run(["chattr", "-i", str(d)], check=False)


@pytest.fixture
def full_dir(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs the right to mount)."""
    d = tmp_path / "full"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with contextlib.suppress(OSError), open(d / "filler", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _run_on(where, dspy_lm):
    set_cache(ResultCache(where / "cache" / "results.sqlite"))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pd.DataFrame({"question": [f"What is {i} + 2?" for i in range(12)]})
            out = batch.run("question -> answer", df, lm=dspy_lm, progress=False,
                            spill=where / "spill", chunk_size=4, max_retries=0)
    finally:
        set_cache(None)
    assert out["answer"].tolist() == [str(i + 2) for i in range(12)]
    assert (out["status"] == "ok").all()
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_read_only_directory_turns_cache_and_spill_off_said_once(immutable_dir, dspy_lm):
    said = _run_on(immutable_dir, dspy_lm)
    assert len([m for m in said if "result cache" in m]) == 1
    assert len([m for m in said if "spill" in m]) == 1
    assert all(str(immutable_dir) in m for m in said)


def test_a_full_disk_turns_cache_and_spill_off_said_once(full_dir, dspy_lm):
    said = _run_on(full_dir, dspy_lm)
    assert len([m for m in said if "result cache" in m]) == 1
    assert len([m for m in said if "spill" in m]) == 1
    assert any("No space left" in m or "full" in m for m in said)


def test_a_cache_that_cannot_be_written_still_answers_from_memory(immutable_dir):
    cache = ResultCache(immutable_dir / "results.sqlite")
    with pytest.warns(RuntimeWarning, match="caching on disk is off"):
        cache.put("k", 1)
    assert cache.get("k") == 1 and cache.disk_error is not None
