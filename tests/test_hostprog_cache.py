"""The runtime object cache: per user, private, and every object checked before use."""

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgebnn import hostprog

MODEL = Path(__file__).resolve().parent / "fixtures" / "codegen" / "tiny_bcnn.tflite"


def _run(program) -> dict:
    x = np.random.default_rng(0).integers(0, 256, size=784).astype("<f4")
    proc = subprocess.run([str(program), "0", "1"], input=x.tobytes(), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(hostprog.CACHE_ENV, str(cache))
    return cache


def test_a_planted_cache_in_the_old_shared_location_is_not_used(tmp_path, monkeypatch, private_cache):
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    seen = []
    real = hostprog._runtime_objects

    def spy(*args, **kwargs):
        seen.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(hostprog, "_runtime_objects", spy)
    good = _run(hostprog.build_bench_program(MODEL, tmp_path / "w1"))
    # What another user of the machine could plant: the old predictable key under $TMPDIR.
    tc, files, runtime = seen[0][:3]
    compiler, flags = tc.cc, tc.cflags
    h = hashlib.sha256()
    for part in [compiler, *flags]:
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    planted = systmp / "edgebnn-runtime-objects" / h.hexdigest()[:24]
    planted.mkdir(parents=True, exist_ok=True)
    for f in runtime:
        (planted / (Path(f).stem + ".o")).write_bytes(b"not an object: planted by someone else")
    again = _run(hostprog.build_bench_program(MODEL, tmp_path / "w2"))
    assert again["output"] == good["output"]


def test_a_tampered_cached_object_is_recompiled_not_linked(tmp_path, private_cache):
    good = _run(hostprog.build_bench_program(MODEL, tmp_path / "w1"))
    root = private_cache / "runtime-objects"
    assert os.stat(private_cache).st_mode & 0o777 == 0o700
    (entry,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    manifest = json.loads((entry / "manifest.json").read_text())
    victim = entry / sorted(manifest["objects"])[0]
    victim.write_bytes(b"\x7fELF tampered")
    again = _run(hostprog.build_bench_program(MODEL, tmp_path / "w2"))
    assert again["output"] == good["output"]
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == manifest["objects"][victim.name]


@pytest.mark.parametrize("how", ["world_writable", "other_owner"])
def test_an_unsafe_cache_directory_is_not_used(tmp_path, monkeypatch, private_cache, how):
    private_cache.mkdir()
    if how == "world_writable":
        os.chmod(private_cache, 0o777)
        match = "other users can write to it"
    else:
        uid = os.getuid()
        monkeypatch.setattr(hostprog.os, "getuid", lambda: uid + 1)
        match = "owned by uid"
    with pytest.warns(UserWarning, match=match):
        program = hostprog.build_bench_program(MODEL, tmp_path / "w")
    assert _run(program)["output"]
    assert list(private_cache.iterdir()) == []
