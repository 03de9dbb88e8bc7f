"""Fuzz the TFLite reader and the C code generator with mutated flatbuffers.

Each case takes one shipped flatbuffer (``edgebnn/pretrained/*.tflite``,
``tests/fixtures/codegen/*.tflite`` and ``tests/fixtures/codegen/random/``),
applies 1-3 seeded mutations (byte flips, truncation, chunk duplication, and
in-place edits of schema fields located through the ``tflite`` package's
table offsets: shapes, tensor types, buffer/opcode/tensor indices, subgraph
input and output lists, vector lengths, builtin option fields, custom option
bytes, names, quantization), then runs :func:`edgebnn.graph.load_graph` and
:func:`edgebnn.codegen.generate`. When export succeeds, the generated C is
compiled with ``-Wall -Wextra -Werror -fsanitize=address,undefined
-fno-sanitize-recover=all`` through :mod:`edgebnn.hostprog` (the
runtime objects are built once per flag set) and run on one seeded random
input, with a timeout.

A case passes when it ends in success or an ``EdgeBnnError`` with a
non-empty message; anything else (another exception, a compile error, a
sanitizer report, a crash, a non-zero exit, a hang) is a failure, and its
bytes are written to ``--save DIR``.

Usage:
    python tools/fuzz_models.py --cases 10000 --seed 1 --jobs 1 --save /tmp/fuzz-fail

The summary line: ``N cases: X ok, Y EdgeBnnError, Z failures``.
"""

import argparse
import hashlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edgebnn.errors import EdgeBnnError  # noqa: E402

SANITIZE_CFLAGS = ("-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                   "-fno-omit-frame-pointer")
PY_TIMEOUT = 60  # seconds for reader + export of one case
RUN_TIMEOUT = 30  # seconds for the compiled program


def seed_models(repo=REPO):
    """The flatbuffers the fuzzer mutates, sorted."""
    pats = ("edgebnn/pretrained/*.tflite", "tests/fixtures/codegen/*.tflite", "tests/fixtures/codegen/random/*.tflite")
    return sorted(p for pat in pats for p in repo.glob(pat))


# --------------------------------------------------------------------------
# Edit sites: byte positions of schema fields, found through the tflite tables


@dataclass(frozen=True)
class Site:
    kind: str  # "i32", "u32", "i8", "u8", "f32", "i64", "u64", "byte"
    pos: int
    label: str
    ref: int = 0  # a count the value relates to (tensors, buffers, codes)


def _field_pos(tab, slot):
    o = tab.Offset(slot)
    return tab.Pos + o if o else None


def _vector_sites(tab, slot, kind, size, label, out, ref=0):
    o = tab.Offset(slot)
    if not o:
        return
    start, n = tab.Vector(o), tab.VectorLen(o)
    out.append(Site("u32", start - 4, f"{label} length", n))
    for i in range(min(n, 64)):
        out.append(Site(kind, start + i * size, f"{label}[{i}]", ref))


def _table_scalar_sites(table, label, out):
    """Every present field of a table (builtin options) as an edit site, width guessed from the layout."""
    tab = getattr(table, "_tab", table)  # BuiltinOptions() returns a bare flatbuffers Table
    vt = tab.Pos - struct.unpack_from("<i", tab.Bytes, tab.Pos)[0]
    vt_len = struct.unpack_from("<H", tab.Bytes, vt)[0]
    obj_len = struct.unpack_from("<H", tab.Bytes, vt + 2)[0]
    offs = sorted({struct.unpack_from("<H", tab.Bytes, vt + 4 + 2 * i)[0] for i in range((vt_len - 4) // 2)} - {0})
    for k, off in enumerate(offs):
        end = offs[k + 1] if k + 1 < len(offs) else obj_len
        width = end - off
        kind = "i32" if width >= 4 else "i8"
        out.append(Site(kind, tab.Pos + off, f"{label}+{off}"))


def edit_sites(buf):
    """Edit sites of a well-formed flatbuffer (a list of :class:`Site`)."""
    import tflite

    model = tflite.Model.GetRootAs(buf, 0)
    sites = []
    n_buf, n_codes = model.BuffersLength(), model.OperatorCodesLength()
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        for slot, kind, name in ((4, "i8", "deprecated_builtin_code"), (10, "i32", "builtin_code")):
            p = _field_pos(oc._tab, slot)
            if p is not None:
                sites.append(Site(kind, p, f"opcode {i} {name}"))
        o = oc._tab.Offset(6)
        if o:
            start, n = oc._tab.Vector(o), oc._tab.VectorLen(o)
            sites += [Site("byte", start + k, f"opcode {i} custom_code[{k}]") for k in range(n)]
    for i in range(n_buf):
        b = model.Buffers(i)
        for slot, name in ((6, "offset"), (8, "size")):
            p = _field_pos(b._tab, slot)
            if p is not None:
                sites.append(Site("u64", p, f"buffer {i} {name}"))
        o = b._tab.Offset(4)
        if o:
            start, n = b._tab.Vector(o), b._tab.VectorLen(o)
            sites.append(Site("u32", start - 4, f"buffer {i} data length", n))
            for _ in range(min(4, n)):
                k = (start * 7919 + _ * 104729) % n
                sites.append(Site("byte", start + k, f"buffer {i} data[{k}]"))
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        n_t = sub.TensorsLength()
        _vector_sites(sub._tab, 6, "i32", 4, f"subgraph {s} inputs", sites, n_t)
        _vector_sites(sub._tab, 8, "i32", 4, f"subgraph {s} outputs", sites, n_t)
        for i in range(n_t):
            t = sub.Tensors(i)
            _vector_sites(t._tab, 4, "i32", 4, f"tensor {i} shape", sites)
            for slot, kind, name, ref in ((6, "i8", "type", 0), (8, "u32", "buffer", n_buf),
                                          (14, "u8", "is_variable", 0)):
                p = _field_pos(t._tab, slot)
                if p is not None:
                    sites.append(Site(kind, p, f"tensor {i} {name}", ref))
            o = t._tab.Offset(10)
            if o:
                start = t._tab.Vector(o)
                sites += [Site("byte", start + k, f"tensor {i} name[{k}]") for k in range(min(t._tab.VectorLen(o), 4))]
            q = t.Quantization()
            if q is not None:
                _vector_sites(q._tab, 8, "f32", 4, f"tensor {i} scale", sites)
                _vector_sites(q._tab, 10, "i64", 8, f"tensor {i} zero_point", sites)
                p = _field_pos(q._tab, 16)
                if p is not None:
                    sites.append(Site("i32", p, f"tensor {i} quantized_dimension"))
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            p = _field_pos(op._tab, 4)
            if p is not None:
                sites.append(Site("u32", p, f"op {i} opcode_index", n_codes))
            _vector_sites(op._tab, 6, "i32", 4, f"op {i} inputs", sites, n_t)
            _vector_sites(op._tab, 8, "i32", 4, f"op {i} outputs", sites, n_t)
            p = _field_pos(op._tab, 10)
            if p is not None:
                sites.append(Site("u8", p, f"op {i} builtin_options_type"))
            table = op.BuiltinOptions()
            if table is not None:
                _table_scalar_sites(table, f"op {i} options", sites)
            o = op._tab.Offset(14)
            if o:
                start, n = op._tab.Vector(o), op._tab.VectorLen(o)
                sites += [Site("byte", start + k, f"op {i} custom_options[{k}]") for k in range(n)]
    return sites


_FORMATS = {"i32": "<i", "u32": "<I", "i8": "<b", "u8": "<B", "f32": "<f", "i64": "<q", "u64": "<Q", "byte": "<B"}
_RANGES = {"i32": (-2**31, 2**31 - 1), "u32": (0, 2**32 - 1), "i8": (-128, 127), "u8": (0, 255),
           "i64": (-2**63, 2**63 - 1), "u64": (0, 2**64 - 1), "byte": (0, 255)}


def _new_value(site, cur, rng):
    if site.kind == "f32":
        choices = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 3.0e38, 1e-45, -cur, cur * 1e6,
                   float(rng.normal())]
        return choices[rng.integers(len(choices))]
    if site.kind == "byte":
        choices = [0, 0xFF, ord("*"), ord("/"), ord("\\"), ord("\n"), ord("?"), ord("\""), int(rng.integers(256)),
                   cur ^ (1 << int(rng.integers(8)))]
    elif site.kind in ("i8", "u8"):
        choices = [0, 1, 2, 3, 4, 5, 6, 9, 10, 17, 18, 127, 255 if site.kind == "u8" else -1, -128 if site.kind == "i8"
                   else 128, cur + 1, cur - 1, int(rng.integers(-128, 128))]
    else:
        choices = [0, 1, -1, 2, 3, cur + 1, cur - 1, cur * 2, -cur, 2**31 - 1, -2**31, 2**16, 2**15, 65537,
                   cur * 65536, int(rng.integers(0, 300)), site.ref, site.ref - 1, 2**32 - 1, 2**62]
    lo, hi = _RANGES[site.kind]
    v = int(choices[rng.integers(len(choices))])
    return min(max(v, lo), hi) if site.kind not in ("u32", "u64", "byte", "u8") else v % (hi + 1)


def mutate(buf, sites, rng):
    """Apply 1-3 seeded mutations to ``buf``; return (bytes, list of descriptions)."""
    data = bytearray(buf)
    notes = []
    for _ in range(int(rng.integers(1, 4))):
        r = rng.random()
        if r < 0.65 and sites:
            site = sites[int(rng.integers(len(sites)))]
            fmt = _FORMATS[site.kind]
            if site.pos + struct.calcsize(fmt) > len(data):
                continue
            cur = struct.unpack_from(fmt, data, site.pos)[0]
            new = _new_value(site, cur, rng)
            struct.pack_into(fmt, data, site.pos, new)
            notes.append(f"{site.label}: {cur!r} -> {new!r}")
        elif r < 0.85:
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(len(data)))
                data[pos] ^= 1 << int(rng.integers(8))
                notes.append(f"flip byte {pos}")
        elif r < 0.93:
            cut = int(rng.integers(0, len(data)))
            data = data[:cut]
            notes.append(f"truncate to {cut} bytes")
            if not data:
                break
        else:
            a = int(rng.integers(len(data)))
            b = min(len(data), a + int(rng.integers(1, 256)))
            at = int(rng.integers(len(data) + 1))
            data[at:at] = data[a:b]
            notes.append(f"duplicate bytes {a}:{b} at {at}")
    return bytes(data), notes


# --------------------------------------------------------------------------
# One case


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


@dataclass
class Outcome:
    status: str  # "ok", "error" (EdgeBnnError), "failure"
    message: str
    compiled: bool = False


_SEEN_C = set()


def _structure_key(gen):
    """Hash of the generated sources without the constant arrays: weight-only changes compile once."""
    h = hashlib.sha256()
    for name, text in sorted(gen.files.items()):
        if name.endswith(".c") and name.startswith(gen.name):
            text = "\n".join(line for line in text.split("\n") if not line.startswith(("  ", "static const float",
                                                                                         "static const int32_t")))
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def run_case(data, name, *, compile_=True, kernels="ref", rng=None, workdir=None):
    """Reader + export (+ sanitized build and run). Returns an :class:`Outcome`."""
    from edgebnn.codegen import generate
    from edgebnn.hostprog import build_predict_program
    from edgebnn.graph import load_graph

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PY_TIMEOUT)
    try:
        try:
            load_graph(data, name=name)
            gen = generate(data, name="model", kernels=kernels)
        except EdgeBnnError as exc:
            msg = str(exc).strip()
            if not msg:
                return Outcome("failure", f"{type(exc).__name__} with an empty message")
            return Outcome("error", f"{type(exc).__name__}: {msg}")
        except _Hang:
            return Outcome("failure", f"hang: reader + export took over {PY_TIMEOUT} s")
        except BaseException as exc:  # noqa: BLE001 - the point: anything else is a failure
            import traceback

            return Outcome("failure", "".join(traceback.format_exception(exc))[-3000:])
        if not compile_:
            return Outcome("ok", "exported")
        key = (kernels, _structure_key(gen))
        if key in _SEEN_C:
            return Outcome("ok", "exported (same C structure already compiled)")
        signal.alarm(0)
        with tempfile.TemporaryDirectory(prefix="edgebnn-fuzz-", dir=workdir) as wd:
            try:
                exe, gen2 = build_predict_program(data, wd, extra_cflags=SANITIZE_CFLAGS, kernels=kernels)
            except EdgeBnnError as exc:
                return Outcome("failure", f"build of the exported C failed: {exc}"[-4000:], True)
            rng = rng or np.random.default_rng(0)
            x = rng.normal(0.0, 1.0, gen2.input_size).astype("<f4") * np.float32(rng.choice([1.0, 100.0]))
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
            try:
                proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, timeout=RUN_TIMEOUT, env=env)
            except subprocess.TimeoutExpired:
                return Outcome("failure", f"hang: the compiled model ran over {RUN_TIMEOUT} s", True)
            if proc.returncode != 0 or proc.stderr.strip():
                return Outcome("failure", f"the compiled model exited {proc.returncode}: "
                                          f"{proc.stderr.decode(errors='replace')[-3000:]}", True)
            if len(proc.stdout) != 4 * gen2.output_size:
                return Outcome("failure", f"the compiled model wrote {len(proc.stdout)} bytes, expected "
                                          f"{4 * gen2.output_size}", True)
        _SEEN_C.add(key)
        return Outcome("ok", "exported, compiled and ran clean", True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# Driver

_SEEDS = {}


def _seed_data():
    if not _SEEDS:
        for p in seed_models():
            buf = p.read_bytes()
            _SEEDS[p.name] = (buf, edit_sites(buf))
    return _SEEDS


def make_case(seed, index):
    """The bytes and description of case ``index`` of run ``seed`` (independent of --jobs)."""
    rng = np.random.default_rng([seed, index])
    seeds = _seed_data()
    names = sorted(seeds)
    base = names[int(rng.integers(len(names)))]
    buf, sites = seeds[base]
    data, notes = mutate(buf, sites, rng)
    return base, data, notes, rng


def fuzz_one(args):
    seed, index, compile_fraction, workdir = args
    base, data, notes, rng = make_case(seed, index)
    compile_ = rng.random() < compile_fraction
    kernels = "opt" if rng.random() < 0.5 else "ref"
    out = run_case(data, f"fuzz-{seed}-{index}.tflite (from {base})", compile_=compile_, kernels=kernels, rng=rng,
                   workdir=workdir)
    return index, base, notes, out, data if out.status == "failure" else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="number of mutated models")
    ap.add_argument("--seed", type=int, default=0, help="run seed (case i uses numpy seed [seed, i])")
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--compile-fraction", type=float, default=1.0,
                    help="share of exported cases compiled with sanitizers and run (0-1)")
    ap.add_argument("--save", type=Path, default=None, help="directory for the bytes of failing cases")
    ap.add_argument("--quiet", action="store_true", help="only the summary line and failures")
    a = ap.parse_args(argv)
    if a.cases < 0 or a.jobs < 1 or not 0 <= a.compile_fraction <= 1:
        ap.error("--cases >= 0, --jobs >= 1 and 0 <= --compile-fraction <= 1")
    if a.save:
        a.save.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    counts = {"ok": 0, "error": 0, "failure": 0}
    compiled = 0
    jobs = [(a.seed, i, a.compile_fraction, None) for i in range(a.start, a.start + a.cases)]
    if a.jobs == 1:
        results = map(fuzz_one, jobs)
    else:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(a.jobs)
        results = pool.imap_unordered(fuzz_one, jobs, chunksize=4)
    done = 0
    for index, base, notes, out, data in results:
        done += 1
        counts[out.status] += 1
        compiled += out.compiled
        if out.status == "failure":
            print(f"FAILURE case {index} ({base}; {'; '.join(notes)}):\n{out.message}\n", flush=True)
            if a.save and data is not None:
                (a.save / f"case-{a.seed}-{index}.tflite").write_bytes(data)
        if not a.quiet and done % 100 == 0:
            print(f"  {done} cases, {counts['failure']} failures, {compiled} compiled, "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    wall = time.monotonic() - t0
    print(f"{a.cases} cases: {counts['ok']} ok, {counts['error']} EdgeBnnError, {counts['failure']} failures "
          f"({compiled} compiled with sanitizers; seed {a.seed}; {wall:.0f} s)")
    return 1 if counts["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
