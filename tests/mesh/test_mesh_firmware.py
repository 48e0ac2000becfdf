"""The C++ protocol library: host tests with g++, a differential fuzz against Python, Cortex-M4.

The host build uses the address and undefined-behaviour sanitizers, so a crash or an out of
bounds access anywhere in the parser, framer or roles fails these tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mesh_fuzz import fuzz_lines
from mesh_vectors import VECTORS, load

from zeke.mesh import protocol as p

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
TESTS = FIRMWARE / "tests"
KEY, _ = load()

needs_gxx = pytest.mark.skipif(
    shutil.which("g++") is None or shutil.which("make") is None,
    reason="g++ and make are needed for the host tests (Debian: build-essential)",
)


@pytest.fixture(scope="module")
def host_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("fw-build")
    result = subprocess.run(
        ["make", "-C", str(TESTS), f"BUILD={build}", f"{build}/host_tests"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build / "host_tests"


@needs_gxx
def test_cpp_vectors_and_roles(host_tests: Path) -> None:
    result = subprocess.run(
        [str(host_tests), "vectors", str(VECTORS)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = re.search(r"vectors: (\d+) lines, (\d+) streams", result.stdout)
    assert lines and int(lines[1]) >= 80 and int(lines[2]) >= 10
    assert re.search(r"(\d+) checks, 0 failures", result.stdout)


@needs_gxx
def test_cpp_fuzz_counts_every_line(host_tests: Path) -> None:
    """100,000 random and mutated lines under ASan/UBSan: no crash, each line counted once."""
    result = subprocess.run(
        [str(host_tests), "fuzz", str(VECTORS), "100000", "12345"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    m = re.search(r"fuzz: (\d+) lines, (\d+) counted, (\d+) ok", result.stdout)
    assert m and int(m[1]) == 100000
    dropped = sum(int(n) for n in re.findall(r" \w+=(\d+)", result.stdout.split("dropped:")[1]))
    assert int(m[3]) + dropped == int(m[2]) > 90000


@needs_gxx
def test_cpp_and_python_agree_on_fuzzed_lines(host_tests: Path, tmp_path: Path) -> None:
    """Differential: 10,000 fuzzed lines, the same verdict from both implementations."""
    lines = fuzz_lines(10_000, seed=7)
    from mesh_vectors import escape

    result = subprocess.run(
        [str(host_tests), "verdict", str(VECTORS)],
        input="\n".join(escape(line) for line in lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cpp = result.stdout.splitlines()
    assert len(cpp) == len(lines)
    mismatches = []
    for line, theirs in zip(lines, cpp):
        try:
            ours = "ok:" + p.check(line, KEY, p.APP).type
        except p.LineError as err:
            ours = err.reason.value
        if ours != theirs:
            mismatches.append((line, ours, theirs))
    assert not mismatches, mismatches[:10]
    assert sum(v.startswith("ok:") for v in cpp) >= 100  # the fuzzer reaches valid lines too


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-g++") is None,
    reason="arm-none-eabi-g++ not installed (Debian package gcc-arm-none-eabi)",
)
def test_library_compiles_for_cortex_m4_without_heap(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-C", str(TESTS), f"BUILD={tmp_path}", "arm"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no heap, exceptions or RTTI" in result.stdout
    objects = sorted(path.name for path in (tmp_path / "arm").glob("*.o"))
    assert objects == ["zeke_protocol.o", "zeke_roles.o", "zeke_sha256.o"]
