"""Writing outputs: atomic files, devices and pipes written through, SIGTERM-safe, checked early."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pyod_ae_ext.errors import AdscoreError
from pyod_ae_ext.outputs import check_output_path, write_output


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_output(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_error_is_one_adscore_error_and_leaves_nothing(tmp_path):
    with pytest.raises(AdscoreError, match="No space left"):
        write_output("/dev/full", b"x" * 100_000)
    with pytest.raises(AdscoreError, match="does not exist"):
        write_output(tmp_path / "missing" / "f", b"x")
    assert list(tmp_path.iterdir()) == []


def test_check_output_path_refuses_inputs_directories_and_missing_dirs(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    for same in (data, link, tmp_path / "." / "data.csv"):
        with pytest.raises(AdscoreError, match="also an input"):
            check_output_path(same, inputs=[data])
    with pytest.raises(AdscoreError, match="is a directory"):
        check_output_path(tmp_path, inputs=[data])
    with pytest.raises(AdscoreError, match="does not exist"):
        check_output_path(tmp_path / "nope" / "x.csv")
    check_output_path(tmp_path / "new.csv", inputs=[data, "-", None])
    check_output_path("-", inputs=[data])
    check_output_path(os.devnull, inputs=[data])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "link.csv"]


@pytest.fixture
def locked_directory(tmp_path):
    """A directory nobody may create files in: immutable for root (who ignores modes), else mode 555."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available on this file system")
        yield locked
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    else:
        locked.chmod(0o555)
        yield locked
        locked.chmod(0o755)


def test_unwritable_directory_is_found_before_any_work(locked_directory, runner, tmp_path):
    with pytest.raises(AdscoreError, match="not writable"):
        check_output_path(locked_directory / "m.adscore")
    data = tmp_path / "data.csv"
    data.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    from pyod_ae_ext.cli import cli

    result = runner.invoke(cli, ["fit", "-d", "toll", str(data), "-o", str(locked_directory / "m.adscore")])
    assert result.exit_code == 2 and "not writable" in result.stderr
    assert "fitting" not in result.stderr  # refused before the fit started


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    """A slow disk (fsync that sleeps) and a SIGTERM in the middle: old file intact, no temp file."""
    target = tmp_path / "model.adscore"
    target.write_bytes(b"previous model")
    script = textwrap.dedent(f"""
        import os, sys, time
        from pyod_ae_ext import outputs

        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(30)

        outputs.os.fsync = slow_fsync
        outputs.write_output({str(target)!r}, b"new model" * 1000)
        print("finished", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "writing"
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM
    assert [p.name for p in tmp_path.iterdir()] == ["model.adscore"]
    assert target.read_bytes() == b"previous model"
