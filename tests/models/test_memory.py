"""The classifier gives freed heap memory back every few calls (models/memory.py)."""

from __future__ import annotations

from models.classifier import TextClassifier
from models.memory import TRIM_EVERY, FreedMemoryReturner


def test_every_nth_call_trims_the_heap_with_nothing_kept():
    calls: list[int] = []
    returner = FreedMemoryReturner(every=3, trim=lambda pad: calls.append(pad) or 1)
    assert [returner() for _ in range(7)] == [False, False, True, False, False, True, False]
    assert calls == [0, 0]  # malloc_trim(0): release everything it can


def test_without_glibc_it_does_nothing():
    returner = FreedMemoryReturner(trim=None)
    assert not any(returner() for _ in range(2 * TRIM_EVERY))


def test_on_linux_it_finds_glibc_malloc_trim_and_calls_it():
    returner = FreedMemoryReturner(every=1)
    assert returner.trim is not None
    assert returner() is True


def test_the_classifier_trims_after_its_predictions(tiny_model_dir):
    classifier = TextClassifier.load(tiny_model_dir)
    calls: list[int] = []
    classifier.return_freed_memory = FreedMemoryReturner(every=2, trim=calls.append)
    for _ in range(4):
        classifier.predict(["Когда починят дорогу?", "Спасибо"])
    classifier.predict_with_topics(["Опять нет света"])
    assert len(calls) == 2  # calls 2 and 4 of 5


MMAPPED_BLOCKS = """
import ctypes, sys
from models.memory import map_large_blocks

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mmapped_by(size):
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    during = libc.mallinfo2().hblks
    libc.free(block)
    return during - before

libc.free(libc.malloc(4 << 20))  # freeing a mmapped 4 MiB block raises glibc's threshold to it
libc.malloc_trim(0)  # no free MiB left at the heap's top
if sys.argv[1] == "set":
    assert map_large_blocks()
print(mmapped_by(1 << 20), mmapped_by(16 << 10))
"""


def test_with_large_blocks_mapped_a_1_mib_block_is_mmapped_even_after_the_threshold_rose():
    """glibc's own threshold rises as mmapped blocks are freed; the worker's fixed one does not
    (page records of growing size grew the worker's heap, docs/ARCHITECTURE.md). A block the
    heap has a free chunk for comes from the heap either way: a fresh process has no free MiB."""
    import subprocess
    import sys
    from pathlib import Path

    def run(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", MMAPPED_BLOCKS, mode], check=True,
                              capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout.split()

    assert run("default") == ["0", "0"]  # the heap grows for it
    assert run("set") == ["1", "0"]  # 1 MiB mmapped; 16 KiB (below 32) still from the heap
