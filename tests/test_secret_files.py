"""Secret files (xrec_site.secret_files): private from their first byte, one secret however many start at once."""

import os
import stat
import threading
from pathlib import Path

import pytest

from xrec_site.secret_files import secret_file


def test_a_new_key_file_is_created_with_mode_600_even_under_a_permissive_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("a mode set after the file exists leaves a moment when others may read it")

    # Mode 600 from the create call itself: a write-then-chmod would trip these.
    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(Path, "chmod", chmod)
    key_file = tmp_path / "secret_key"
    previous = os.umask(0)
    try:
        key = secret_file(key_file)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == key and len(key) >= 50


def test_an_existing_key_file_is_read_not_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    first = secret_file(key_file)

    assert secret_file(key_file) == first
    assert key_file.read_text() == first


def test_processes_starting_together_all_get_the_one_key_that_was_written(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    start = threading.Barrier(16)
    keys: list[str] = []

    def start_up() -> None:
        start.wait()
        keys.append(secret_file(key_file))

    threads = [threading.Thread(target=start_up) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 16 and set(keys) == {key_file.read_text()}


def test_a_file_another_process_has_created_but_not_yet_written_is_waited_for(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.touch(mode=0o600)  # the other process's os.open, before its write
    writer = threading.Timer(0.2, key_file.write_text, args=["their-key"])
    writer.start()

    assert secret_file(key_file) == "their-key"
    writer.join()


def test_a_file_left_empty_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    key_file.touch(mode=0o600)

    with pytest.raises(RuntimeError, match="delete it for a new secret"):
        secret_file(key_file, wait_seconds=0.05)
