"""Hostile names, paths and target files never become code in generated files.

The unit tests render a corpus of hostile strings with every function of
:mod:`edgebnn.escape` and let the real readers (gcc, make and the shell, ld)
read the result. The end-to-end tests rename every tensor of a fixture model
to one of those strings, put the model and the outputs under directories with
hostile names, and run export, bench and firmware build on it: the generated
files must compile with the project's strict flags, preprocess to exactly
what the same model with plain names preprocesses to, and ``make -n`` must
run nothing (no ``PWNED`` marker file ever appears).
"""

import dataclasses
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgebnn import escape
from edgebnn.cli import main
from edgebnn.codegen import generate
from edgebnn.codegen import generator
from edgebnn.codegen.generator import RUNTIME_DIR, c_array_sources
from edgebnn.errors import TargetError, UnsafeInputError
from edgebnn.graph import load_graph

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "codegen"
TINY = FIXTURES / "tiny_bcnn.tflite"
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")
MARKER = "PWNED"
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
if not SHARED_MNIST.is_dir():  # a git worktree one level deeper than the checkout
    SHARED_MNIST = Path("/work/shared/data/mnist")

#: Tensor-name payloads (raw bytes, as a flatbuffer string holds them). The
#: ``pwned`` identifiers must never reach the compiler as code.
HOSTILE = {
    "comment_end": b"*/ int pwned_comment_end = 1; /*",
    "spliced_comment_end": b"*\\\n/ int pwned_spliced = 1; /\\\n*",
    "trigraph_comment_end": b"*??/\n/ int pwned_trigraph_end = 1; /??/\n*",
    "backslash_newline": b"x\\\nint pwned_splice = 2;",
    "trigraph_newline": b"x??/\nint pwned_trigraph = 3;",
    "crlf": b"x\r\nint pwned_crlf = 4; /*",
    "cr": b"x\rint pwned_cr = 5;",
    "lf": b"x\nint pwned_lf = 6;",
    "nul": b"x\x00int pwned_nul = 7;",
    "include": b"#include <pwned_include.h>\n#define EBNN_OK pwned",
    "quotes": b"\"; int pwned_quote = 9; char *s = \"'",
    "shell": b"$(shell touch PWNED) `touch PWNED` ; touch PWNED",
    "invalid_utf8": b"\xff\xfe\xc3 pwned",
    "non_ascii": "\u00e9 \u00fc \u6f22\u5b57 \u2028 \u0085".encode(),
    "trailing_backslash": b"pwned \\",
    "trailing_trigraph": b"pwned ??/",
    "trigraphs": b"??= ??( ??) ??' ??< ??! ??> ??-",
    "nested": b"/*/ pwned /* */*/",
    "trailing_star": b"pwned *",
    "trailing_slash": b"pwned /",
}

#: Path components: each is a directory name on the way to a model or an output.
HOSTILE_DIRS = {
    "newline": "a\nb",
    "make_shell": "$(shell touch PWNED)",
    "newline_make_shell": "x\n$(shell touch PWNED)\n",
    "backtick": "`touch PWNED`",
    "star": "data*",
    "comment_end": "c*/int pwned_dir;/*",
    "backslash_newline": "b\\\nint pwned_dir2;",
    "spliced_comment_end": "s*\\\n/int pwned_dir3[-1];/\\\n*",
    "quotes_hash": "q'\"#x",
    "non_ascii": "\u00e9t\u00e9",
    "invalid_utf8": os.fsdecode(b"bad\xff"),
}


def _corpus() -> dict:
    """id -> str: the payloads decoded two ways, lone surrogates, seeded random strings."""
    out = {}
    for key, raw in HOSTILE.items():
        out[key] = raw.decode("utf-8", "surrogateescape")
        out[key + "_replaced"] = raw.decode("utf-8", "replace")
    out.update({f"dir_{k}": v for k, v in HOSTILE_DIRS.items()})
    out["lone_surrogate"] = "a\ud800b\udfff"
    out["empty"] = ""
    out["plain"] = "sequential/quant_conv2d/QuantConv2D;conv2d:0"
    out["octal_then_digit"] = "\x007\x01" + "23\x7f9"
    out["hex_then_hexdigit"] = "\x1bab\xffcd"
    rng = np.random.default_rng(0)
    alphabet = list("*/\\?\n\r\x00\"'#$`;()a1 \t") + ["\u00e9", "\udcff", "\u2028", "??/"]
    for i in range(150):
        out[f"random{i}"] = "".join(rng.choice(alphabet, size=int(rng.integers(0, 14))))
    return out


CORPUS = _corpus()


def _decode_escapes(rendered: str) -> bytes:
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), rendered.encode("ascii"))


def _no_marker(*roots):
    for root in roots:
        found = [p for p in Path(root).rglob(MARKER)] if Path(root).is_dir() else []
        assert not found, f"a hostile string ran a command: {found}"
    assert not (Path.cwd() / MARKER).exists()


def _need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is needed for this test")


# ------------------------------------------------------------------ renderers


@pytest.mark.parametrize("key", sorted(CORPUS))
def test_c_comment_is_inert_and_lossless(key):
    text = CORPUS[key]
    out = escape.c_comment(text)
    assert all(0x20 <= ord(c) < 0x7F for c in out), out
    assert "*/" not in out and "/*" not in out and "?" not in out
    assert re.fullmatch(r"([^\\]|\\x[0-9a-f]{2})*", out), out
    assert _decode_escapes(out) == escape.text_bytes(text)
    assert escape.ld_comment(text) == out


def test_plain_names_are_unchanged():
    for text in ("sequential/quant_conv2d/QuantConv2D", "serving_default_input_1:0", "a * b / c"):
        assert escape.c_comment(text) == text
        assert escape.make_comment(text) == text
    assert escape.make_word("-mcpu=cortex-m4", what="flag") == "-mcpu=cortex-m4"


def test_c_comments_compile_to_nothing(tmp_path):
    """gcc sees only the declarations between the comments, with trigraphs on."""
    keys = sorted(CORPUS)
    lines = []
    for i, key in enumerate(keys):
        c = escape.c_comment(CORPUS[key])
        lines += [f"/* {c} */", f"int decl_{i}a;", "/*", f" * {c}".rstrip(), " */", f"int decl_{i}b;"]
    src = tmp_path / "comments.c"
    src.write_text("\n".join(lines) + "\n", encoding="ascii")
    proc = subprocess.run(["gcc", *STRICT, "-trigraphs", "-Wtrigraphs", "-E", "-P", str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = [f"int decl_{i}{s};" for i in range(len(keys)) for s in "ab"]
    assert re.findall(r"int decl_\w+;", proc.stdout) == want
    assert proc.stdout.split() == " ".join(want).split()
    proc = subprocess.run(["gcc", *STRICT, "-trigraphs", "-c", str(src), "-o", str(tmp_path / "c.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_c_string_holds_exactly_the_bytes(tmp_path):
    keys = sorted(CORPUS)
    body = [f"static const char s{i}[] = {escape.c_string(CORPUS[k])};" for i, k in enumerate(keys)]
    body.append("static void put(const char *s, unsigned long n) {")
    body.append("    unsigned char len[4] = {(unsigned char)(n & 255u), (unsigned char)((n >> 8) & 255u), 0, 0};")
    body.append("    fwrite(len, 1, 4, stdout); fwrite(s, 1, n, stdout);")
    body.append("}")
    body.append("int main(void) {")
    body += [f"    put(s{i}, sizeof s{i} - 1);" for i in range(len(keys))]
    body += ["    return 0;", "}"]
    src = tmp_path / "strings.c"
    src.write_text("#include <stdio.h>\n" + "\n".join(body) + "\n", encoding="ascii")
    exe = tmp_path / "strings"
    proc = subprocess.run(["gcc", *STRICT, "-trigraphs", str(src), "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    got, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        got.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    assert got == [escape.text_bytes(CORPUS[k]) for k in keys]


def test_make_comments_run_nothing(tmp_path):
    _need("make")
    lines = [f"# {escape.make_comment(CORPUS[k])}" for k in sorted(CORPUS)]
    (tmp_path / "Makefile").write_text("\n".join(lines) + "\nall:\n\t@echo ok\n", encoding="ascii")
    for args in (["-n"], []):
        proc = subprocess.run(["make", "-s", *args], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ("echo ok" if args else "ok")
    for k in sorted(CORPUS):
        assert _decode_escapes(escape.make_comment(CORPUS[k])) == escape.text_bytes(CORPUS[k])
    _no_marker(tmp_path)


def _representable(text):
    return not re.search(r"[\n\r\x00\ud800-\udfff]", text)


def test_make_words_reach_the_shell_unchanged(tmp_path):
    """Each word, set in a Makefile variable and expanded in a recipe, is one shell word equal to the input."""
    _need("make")
    words = [CORPUS[k] for k in sorted(CORPUS) if _representable(CORPUS[k])]
    words += ["#", "\\#", "\\\\#", "a\\\\\\#b", "$$", "$(MAKE)", "%", "a;b", "-DX=\"#1\"", " lead", "trail\\"]
    lines = [f"W{i} = {escape.make_word(w, what='word')}" for i, w in enumerate(words)]
    args = " ".join(f"$(W{i})" for i in range(len(words)))
    (tmp_path / "Makefile").write_text("\n".join(lines) + f"\nall:\n\t@printf '%s\\0' {args}\n", encoding="utf-8")
    proc = subprocess.run(["make", "-s"], cwd=tmp_path, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(b"\0")[:-1] == [w.encode("utf-8") for w in words]
    _no_marker(tmp_path)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "bad\udcff"], ids=["lf", "cr", "nul", "surrogate"])
def test_make_word_refuses_what_a_makefile_cannot_hold(bad):
    with pytest.raises(UnsafeInputError, match="toolchain.cc"):
        escape.make_word(bad, what="target file x.toml: toolchain.cc")


def test_ld_comments_are_inert(tmp_path):
    _need("ld")
    obj = tmp_path / "start.o"
    (tmp_path / "start.c").write_text("void _start(void) {}\n")
    subprocess.run(["gcc", "-c", str(tmp_path / "start.c"), "-o", str(obj)], check=True)
    comments = "\n".join(f"/* {escape.ld_comment(CORPUS[k])} */" for k in sorted(CORPUS))
    script = tmp_path / "link.ld"
    script.write_text(comments + "\nENTRY(_start)\nSECTIONS { .text : { *(.text*) } }\n", encoding="ascii")
    proc = subprocess.run(["ld", "-T", str(script), str(obj), "-o", str(tmp_path / "a.out")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_c_include_checks_header_names():
    assert escape.c_include("mnist.h") == '"mnist.h"'
    assert escape.c_include("model/mnist.h") == '"model/mnist.h"'
    for bad in ("a\".h", "../x.h", "/etc/x.h", "a\n.h", "x.c", "a b.h", ""):
        with pytest.raises(UnsafeInputError):
            escape.c_include(bad)


def test_text_bytes_restores_undecodable_path_bytes():
    raw = b"dir\xff\xfe/\xc3\xa9"
    assert escape.text_bytes(os.fsdecode(raw)) == raw
    assert escape.text_bytes(Path(os.fsdecode(raw))) == raw
    assert escape.text_bytes("\ud800") == b"\xed\xa0\x80"


# ------------------------------------------------------------------ --name


@pytest.mark.parametrize("name", ["model\n", "model\r", "mo del", "9lives", "_model", "a-b", "x" * 65, ""],
                         ids=["trailing_newline", "cr", "space", "digit", "underscore", "dash", "long", "empty"])
def test_name_must_be_a_plain_identifier(name):
    with pytest.raises(UnsafeInputError, match=r"--name .* expected a letter, then letters"):
        generate(TINY, name=name)
    with pytest.raises(UnsafeInputError, match="--name"):
        c_array_sources(TINY, name=name)


def _runtime_and_template_stems():
    stems = {p.stem for p in RUNTIME_DIR.glob("*.[ch]")}
    stems |= {p.stem for p in (RUNTIME_DIR.parent / "templates").rglob("*.[ch]")}
    return sorted(stems | {"samples", "fw_model", "stdint", "math", "ebnn_anything", "FW_x", "EBNN"})


@pytest.mark.parametrize("name", _runtime_and_template_stems())
def test_name_of_a_runtime_or_firmware_file_is_refused(name):
    with pytest.raises(UnsafeInputError, match=f"--name '{name}' is reserved"):
        generate(TINY, name=name)


def test_reserved_names_include_every_runtime_file():
    for stem in _runtime_and_template_stems():
        with pytest.raises(UnsafeInputError):
            generator.check_name(stem)
    assert generator.check_name("mnist") == "mnist"
    gen = generate(TINY, name="mnist")
    runtime = {p.name for p in RUNTIME_DIR.glob("*")}
    assert {"mnist.h", "mnist.c"} <= set(gen.files) and not {"mnist.h", "mnist.c"} & runtime


def test_cli_names_the_flag_for_a_bad_name(tmp_path):
    res = CliRunner().invoke(main, ["export", str(TINY), "-o", str(tmp_path / "o"), "--name", "model\n"])
    assert res.exit_code != 0 and "--name 'model\\n'" in res.output, res.output
    res = CliRunner().invoke(main, ["export", str(TINY), "-o", str(tmp_path / "o"), "--name", "ebnn_binary"])
    assert res.exit_code != 0 and "reserved" in res.output, res.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ hostile models


def rename_tensors(data: bytes, names) -> bytes:
    """A copy of a .tflite whose tensor ``i`` is named ``names[i]`` (bytes).

    The new strings are appended at the end of the flatbuffer and each
    tensor's ``name`` offset is pointed at its string: flatbuffer offsets
    are unsigned and forward, and the end is after every table.
    """
    import tflite

    model = tflite.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0)
    buf = bytearray(data)
    for i in range(sub.TensorsLength()):
        tab = sub.Tensors(i)._tab
        slot = tab.Offset(10)  # Tensor.name is field 3: vtable entry at 4 + 2 * 3
        assert slot, f"tensor {i} has no name field to point elsewhere"
        field_pos = tab.Pos + slot
        buf += b"\0" * (-len(buf) % 4)
        new = names[i % len(names)]
        struct.pack_into("<I", buf, field_pos, len(buf) - field_pos)
        buf += struct.pack("<I", len(new)) + new + b"\0"
    return bytes(buf)


#: Appended to every tensor name: a comment terminator hidden by a line
#: splice (backslash-newline, or the trigraph ??/ and a newline), then code
#: that runs before main() and creates the marker file.
RUN_PAYLOADS = (
    b"*\\\n/ extern int system(const char *); __attribute__((constructor)) static void pwned_%d(void) "
    b"{ system(\"touch PWNED\"); } /\\\n*",
    b"*??/\n/ extern int system(const char *); __attribute__((constructor)) static void pwned_%d(void) "
    b"{ system(\"touch PWNED\"); } /??/\n*",
)


def hostile_names(count):
    payloads = list(HOSTILE.values())
    return [f"t{i} ".encode() + payloads[i % len(payloads)] + b" " + RUN_PAYLOADS[i % 2] % i
            for i in range(count)]


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> Path:
    data = TINY.read_bytes()
    n = len(load_graph(data).tensors)
    names = hostile_names(n)
    out = rename_tensors(data, names)
    graph = load_graph(out)
    assert [t.name for t in graph.tensors] == [x.decode("utf-8", "replace") for x in names]
    path = tmp_path_factory.mktemp("hostile") / "hostile.tflite"
    path.write_bytes(out)
    return path


def _preprocess(directory: Path, name: str) -> str:
    proc = subprocess.run(["gcc", *STRICT, "-trigraphs", "-E", "-P", f"-I{directory}", str(directory / f"{name}.c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _compile_all(directory: Path, includes=()):
    srcs = sorted(str(p) for p in directory.rglob("*.c"))
    assert srcs
    inc = [f"-I{d}" for d in (directory, *includes)]
    proc = subprocess.run(["gcc", *STRICT, "-trigraphs", *inc, "-fsyntax-only", *srcs], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _write(files, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (directory / rel).write_text(text, encoding="ascii")  # generated files are ASCII only
    return directory


def test_hostile_tensor_names_stay_in_comments(hostile_model, tmp_path):
    """Finding 1: every tensor name is a payload; the C is the plain model's C."""
    plain = _write(generate(TINY, name="m", command="edgebnn export X").files, tmp_path / "plain")
    bad = _write(generate(hostile_model, name="m", command="edgebnn export X").files, tmp_path / "bad")
    _compile_all(bad)
    got = _preprocess(bad, "m")
    assert "pwned" not in got and "PWNED" not in got
    assert got == _preprocess(plain, "m")
    assert (bad / "m.c").read_text() != (plain / "m.c").read_text()  # the names are there, as comments


def test_hostile_tensor_names_run_the_same_with_bench_engine_c(hostile_model, tmp_path, monkeypatch):
    """Finding 1, through ``edgebnn bench --engine c``: it builds and runs the hostile model like the plain one."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["bench", str(hostile_model), "--engine", "c", "--warmup", "0",
                                    "--runs", "2", "--json"])
    assert res.exit_code == 0, res.output
    from edgebnn.hostprog import predict_c

    x = np.load(FIXTURES / "tiny_bcnn.npz")["x"][:4]
    assert np.array_equal(predict_c(hostile_model, x), predict_c(TINY, x))
    _no_marker(tmp_path, hostile_model.parent)


def _hostile_tree(root: Path, keys) -> Path:
    d = root
    for key in keys:
        d = d / HOSTILE_DIRS[key]
    d.mkdir(parents=True)
    return d


ALL_DIRS = ("newline_make_shell", "backtick", "comment_end", "spliced_comment_end", "quotes_hash", "star",
            "non_ascii", "invalid_utf8")


@pytest.mark.parametrize("keys", [(k,) for k in sorted(HOSTILE_DIRS)] + [ALL_DIRS],
                         ids=sorted(HOSTILE_DIRS) + ["all"])
def test_export_with_hostile_paths(keys, tmp_path, monkeypatch):
    """Findings 3 and 4: hostile model and -o paths reach the banners and the Makefile, as inert text.

    The model's tensor names are plain here, so only the paths are on trial.
    """
    monkeypatch.chdir(tmp_path)
    where = _hostile_tree(tmp_path / "in", keys)
    model = where / "m$(shell touch PWNED)`touch PWNED`.tflite"
    shutil.copyfile(TINY, model)
    out = _hostile_tree(tmp_path / "out", keys) / "gen"
    res = CliRunner().invoke(main, ["export", str(model), "-o", str(out), "--name", "m"])
    assert res.exit_code == 0, res.output
    banner = (out / "m.c").read_text(encoding="ascii")
    assert "Command: edgebnn export" in banner
    _compile_all(out)
    assert _preprocess(out, "m") == _preprocess(_write(generate(TINY, name="m").files, tmp_path / "plain"), "m")
    for args in (["-n"], []):
        proc = subprocess.run(["make", *args], cwd=out, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (out / "libm.a").is_file()
    # the library call records the model's file name in the banners
    gen = generate(model, name="m")
    _write(gen.files, tmp_path / "lib")
    _compile_all(tmp_path / "lib")
    assert subprocess.run(["make", "-n"], cwd=tmp_path / "lib", capture_output=True).returncode == 0
    _no_marker(tmp_path)


def _data_dir(root: Path) -> Path:
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"the MNIST files are expected at {SHARED_MNIST}")
    (root / "mnist").mkdir(parents=True)
    for f in SHARED_MNIST.iterdir():
        (root / "mnist" / f.name).symlink_to(f)
    return root


def _firmware(model, target, out, data_dir):
    from edgebnn.firmware import build_firmware, run_firmware

    build = build_firmware(model, target, out, samples=3, dataset="mnist", data_dir=data_dir,
                           expected="host", name="m", command=f"edgebnn firmware build {model} -o {out}")
    samples_h = (Path(out) / "src" / "samples.h").read_text(encoding="ascii")
    assert "dataset 'mnist'" in samples_h
    for args in (["-n"], ["-s", "-B"]):
        proc = subprocess.run(["make", *args], cwd=out, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    return build, run_firmware(out)


@pytest.mark.slow
def test_firmware_with_hostile_names_paths_and_data_dir(hostile_model, tmp_path, monkeypatch):
    """Finding 4: --data-dir, -o and model paths with hostile names; the host firmware builds and agrees."""
    monkeypatch.chdir(tmp_path)
    data = _data_dir(_hostile_tree(tmp_path / "data", ALL_DIRS))
    model = _hostile_tree(tmp_path / "in", ALL_DIRS) / "m*.tflite"
    shutil.copyfile(hostile_model, model)
    out = _hostile_tree(tmp_path / "out", ALL_DIRS) / "fw*"
    build, run = _firmware(model, _toml_target(tmp_path, "fast"), out, data)
    assert run.ok, run
    _compile_all(out / "src", includes=(out / "src", out / "model", out / "runtime"))
    _no_marker(tmp_path)


def test_firmware_data_dir_ending_in_star(tmp_path, monkeypatch):
    """Finding 4: a harmless folder name ending in '*' used to close samples.h's comment."""
    monkeypatch.chdir(tmp_path)
    data = _data_dir(tmp_path / "my data*")
    out = tmp_path / "fw"
    target = _toml_target(tmp_path, "fast")
    res = CliRunner().invoke(main, ["firmware", "build", str(TINY), "-t", str(target), "-o", str(out),
                                    "--samples", "2", "--dataset", "mnist", "--data-dir", str(data),
                                    "--expected", "host"])
    assert res.exit_code == 0, res.output
    assert "my data*\\x2fmnist" in (out / "src" / "samples.h").read_text()


@pytest.mark.qemu
def test_cortex_m4_firmware_with_hostile_model_and_paths(hostile_model, tmp_path, monkeypatch):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (apt-get install gcc-arm-none-eabi)")
    monkeypatch.chdir(tmp_path)
    data = _data_dir(_hostile_tree(tmp_path / "data", ALL_DIRS))
    model = _hostile_tree(tmp_path / "in", ALL_DIRS) / "m.tflite"
    shutil.copyfile(hostile_model, model)
    out = _hostile_tree(tmp_path / "out", ALL_DIRS) / "fw"
    build, run = _firmware(model, "cortex-m4", out, data)
    if shutil.which("qemu-system-arm"):
        assert run.ok, run
    _no_marker(tmp_path)


# ------------------------------------------------------------------ hostile target files


def _toml_target(tmp_path, name="evil", **edits):
    """A copy of the x86_64 target (built at -O0, to be quick) with ``edits`` applied."""
    from edgebnn.targets import builtin_targets_dir

    text = (builtin_targets_dir() / "x86_64.toml").read_text().replace('"-O3", "-march=native"', '"-O0"')
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace('name = "x86_64"', f'name = "{name}"'))
    return path


@pytest.mark.parametrize("edit", [
    ('description = "This', 'description = "line\\n$(shell touch PWNED)\\nThis'),
    ('\ncc = "gcc"', '\ncc = "gcc\\r"'),
    ('"-O0"', '"-O0\\u0000"'),
], ids=["description_newline", "cc_cr", "flag_nul"])
def test_target_file_refuses_control_characters(edit, tmp_path):
    from edgebnn.targets import load_target

    with pytest.raises(TargetError, match="control characters"):
        load_target(_toml_target(tmp_path, **{edit[0]: edit[1]}))


def test_target_file_name_is_checked(tmp_path):
    from edgebnn.targets import load_target

    path = _toml_target(tmp_path)
    path.write_text(path.read_text().replace('name = "evil"', 'name = "x */ y"'))
    with pytest.raises(TargetError, match="field 'name'"):
        load_target(path)


def test_hostile_target_values_in_makefile_and_linker_script(tmp_path, monkeypatch):
    """Target values reach the Makefile as the same words the build runs, and comments stay comments."""
    from edgebnn.firmware import model_sources
    from edgebnn.firmware.project import SampleSet, build_project, linker_values, write_project
    from edgebnn.targets import load_target

    monkeypatch.chdir(tmp_path)
    path = _toml_target(tmp_path, **{
        'description = "This': 'description = "*/ $(shell touch PWNED) `touch PWNED` # ??/ This',
        '"-DEBNN_USE_BUILTIN_POPCOUNT"': '"-DEBNN_USE_BUILTIN_POPCOUNT", "-DEVIL_HASH=\\"#1\\"", '
                                         '"-DEVIL_DOLLAR=$(shell touch PWNED)", "-DEVIL_TICK=`touch PWNED`"',
    })
    tgt = load_target(path)
    # a Target built in code skips the loader's checks; rendering must hold on its own
    direct = dataclasses.replace(tgt, description="a\n$(shell touch PWNED)\n*/", name="odd\nname")
    src = model_sources(generate(TINY, name="m", target=tgt))
    x = np.zeros((1, src.input_size), np.uint8)
    samples = SampleSet(inputs=x, expected=np.zeros(1, np.int64), source="given", origin="zeros */ \\\n")
    for t, d in ((tgt, tmp_path / "p1"), (direct, tmp_path / "p2")):
        write_project(d, target=t, model=src, samples=samples)
        proc = subprocess.run(["make", "-n"], cwd=d, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    build_project(tmp_path / "p1")
    built = (tmp_path / "p1" / "fw.elf").read_bytes()
    proc = subprocess.run(["make", "-s", "-B"], cwd=tmp_path / "p1", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p1" / "fw.elf").read_bytes() == built
    m4 = dataclasses.replace(load_target("cortex-m4"), name="m4", description="*/ } INCLUDE pwned.ld /*")
    for value in linker_values(m4).values():
        assert "*/" not in str(value) and "/*" not in str(value)
    _no_marker(tmp_path)
