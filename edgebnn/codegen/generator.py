"""Turn a .tflite (LCE or stock float) into C: data, a memory plan, calls.

The pipeline: :func:`edgebnn.graph.load_graph` -> one handler per op
(:mod:`edgebnn.codegen.ops`) -> graph passes (:mod:`edgebnn.codegen.passes`)
-> arena plan (:mod:`edgebnn.codegen.planner`) -> ``NAME.h``/``NAME.c``
through :class:`edgebnn.codegen.writer.CWriter`, plus the runtime sources
from ``firmware/runtime/`` that the calls need and a Makefile.
"""

import functools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgebnn import __version__, resources
from edgebnn.codegen import ops as O
from edgebnn.codegen import ops_int8
from edgebnn.codegen import passes
from edgebnn.codegen.fold import fold_weight_computations
from edgebnn.codegen.planner import ALIGN, Buffer, plan_arena
from edgebnn.codegen.writer import CWriter, c_float, c_int32, c_value
from edgebnn.errors import TFLiteFormatError, UnsafeInputError, UnsupportedOpError
from edgebnn.escape import c_include, make_comment, make_word
from edgebnn.graph import load_graph
from edgebnn.toolchain import kernel_set, toolchain_for

RUNTIME_DIR = resources.runtime_dir()
TEMPLATES_DIR = resources.templates_dir()
HOST_TEMPLATES = TEMPLATES_DIR / "host"

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: Longest ``--name``: it becomes file names and the prefix of identifiers.
MAX_NAME = 64
#: Prefixes the runtime and the firmware own (``ebnn_conv2d_ref``,
#: ``EBNN_OK``, ``EDGEBNN_MODEL_HEADER``, ``fw_samples``): a model name equal
#: to one, or starting with one and ``_``, could define the same identifiers.
RESERVED_PREFIXES = ("ebnn", "edgebnn", "fw")
#: Files the firmware project writes beside the templates (``src/samples.h``).
GENERATED_FILES = ("samples", "fw_model")
#: C99's standard headers: ``NAME.h`` in a directory on the include path
#: would be found before the system's by ``#include <NAME.h>``.
C99_HEADERS = (
    "assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits",
    "locale", "math", "setjmp", "signal", "stdalign", "stdarg", "stdbool", "stddef", "stdint",
    "stdio", "stdlib", "string", "tgmath", "time", "wchar", "wctype",
)


@dataclass(frozen=True)
class GeneratedModel:
    """The C sources of one model and what they cost.

    Attributes:
        files: relative path -> file content: ``NAME.h``, ``NAME.c``, the
            runtime sources the model needs (from ``firmware/runtime/``) and
            a ``Makefile``.
        weights_bytes: bytes of constant data (weights, biases, thresholds).
        arena_bytes: the static arena (peak activation memory, scratch included).
        scratch_bytes: the part of the arena the fused kernels use as scratch
            at their peak.
        arena_bound_bytes: the lower bound on any arena for these buffers
            (the largest sum of sizes of buffers alive at one op);
            ``arena_bytes`` is at least this.
        input_shape, output_shape: shapes of the model's input and output.
        input_size, output_size: number of floats in and out.
        name: the C prefix (``NAME_invoke``).
        sha256: the .tflite's SHA-256.
        ops: one dict per generated call (op indices, type, kernel, output).
    """

    files: dict
    weights_bytes: int
    arena_bytes: int
    scratch_bytes: int
    input_shape: tuple
    output_shape: tuple
    input_size: int
    output_size: int
    name: str
    sha256: str
    ops: list = field(default_factory=list)
    io_dtype: str = "float32"
    input_quantization: tuple = ()
    output_quantization: tuple = ()
    arena_bound_bytes: int = 0

    def to_dict(self, *, with_files: bool = False) -> dict:
        d = asdict(self)
        if not with_files:
            d["files"] = sorted(self.files)
        d["input_shape"] = list(self.input_shape)
        d["output_shape"] = list(self.output_shape)
        return d


class _Context:
    """What handlers see of the graph while parsing."""

    def __init__(self, graph):
        self.graph = graph
        self.packed_channels = {}

    def tensor(self, index):
        return self.graph.tensor(index)


# --------------------------------------------------------------------------
# Model names


@functools.lru_cache(maxsize=None)
def reserved_names() -> dict:
    """Lower-cased names ``--name`` may not take -> why (the file they would hit).

    Every runtime file (``firmware/runtime/``), firmware template file
    (``firmware/templates/``) and file the firmware writes (``samples.h``)
    by stem, and every system header the runtime, the templates or C99 know:
    the generated ``NAME.h``/``NAME.c`` would replace or shadow it.
    """
    reserved = {}
    for d in (RUNTIME_DIR, *sorted(p for p in TEMPLATES_DIR.glob("*") if p.is_dir())):
        for path in sorted(Path(d).glob("*")):
            if path.suffix in (".c", ".h"):
                rel = f"{d.name}/{path.name}"
                reserved.setdefault(path.stem.lower(), f"it would replace {rel}")
                text = path.read_text(errors="replace")
                for header in re.findall(r"#\s*include\s*<(\w+)\.h>", text):
                    reserved.setdefault(header.lower(), f"NAME.h would shadow the system header <{header}.h>")
    for stem in GENERATED_FILES:
        reserved.setdefault(stem, f"it would replace the firmware's src/{stem}.h")
    for header in C99_HEADERS:
        reserved.setdefault(header, f"NAME.h would shadow the system header <{header}.h>")
    return reserved


def _has_reserved_prefix(name: str) -> str:
    low = name.lower()
    return next((p for p in RESERVED_PREFIXES if low == p or low.startswith(p + "_")), "")


def check_name(name, *, flag: str = "--name") -> str:
    """Check that ``name`` can prefix the generated API and name its files.

    A valid name is a C identifier starting with a letter (C reserves
    identifiers starting with ``_``, and ``NAME`` upper-cased starts every
    macro), at most :data:`MAX_NAME` characters, outside the runtime's and
    firmware's prefixes (:data:`RESERVED_PREFIXES`), and not the name of a
    runtime, template or system header file (:func:`reserved_names`).
    Letter case does not matter for the last two: file systems may ignore it.

    Example:
        >>> check_name("mnist")
        'mnist'
        >>> check_name("main")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        edgebnn.errors.UnsafeInputError: --name 'main' is reserved: it would replace ...

    Args:
        name: the proposed name.
        flag: the option the name came from, for the message.

    Returns:
        ``name``.

    Raises:
        UnsafeInputError: naming the flag, the value and what is allowed.
    """
    allowed = f"a letter, then letters, digits or '_' (a C identifier of at most {MAX_NAME} characters)"
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
        raise UnsafeInputError(f"{flag} {name!r} is not a C identifier; expected {allowed}")
    prefix = _has_reserved_prefix(name)
    if prefix:
        raise UnsafeInputError(
            f"{flag} {name!r} is reserved: the prefix '{prefix}' belongs to the runtime and "
            f"firmware (reserved prefixes: {', '.join(RESERVED_PREFIXES)}); expected {allowed}, "
            "outside those prefixes"
        )
    why = reserved_names().get(name.lower())
    if why is not None:
        raise UnsafeInputError(
            f"{flag} {name!r} is reserved: {why.replace('NAME', name)}; choose another name "
            f"(reserved: {', '.join(n for n in sorted(reserved_names()) if not _has_reserved_prefix(n))}, "
            f"and names starting with {', '.join(p + '_' for p in RESERVED_PREFIXES)})"
        )
    return name


# --------------------------------------------------------------------------
# Runtime sources


def runtime_functions(runtime_dir=RUNTIME_DIR) -> dict:
    """Map every function defined in the runtime's .c files to its file name.

    Raises:
        UnsupportedOpError: a function is defined in two files (a stale file
            left by an older version, e.g. in an unclean build directory:
            the generated program would not link).
    """
    defs = {}
    for path in sorted(Path(runtime_dir).glob("*.c")):
        text = path.read_text()
        for m in re.finditer(r"^[A-Za-z_][\w \*]*?\b(ebnn_\w+)\s*\(", text, re.MULTILINE):
            # a definition: the text after the closing parenthesis starts with '{'
            start = m.end()
            depth, i = 1, start
            while i < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if text[i:].lstrip().startswith("{"):
                first = defs.setdefault(m.group(1), path.name)
                if first != path.name:
                    raise UnsupportedOpError(
                        f"the C runtime in {runtime_dir} defines {m.group(1)} in both {first} and {path.name}; "
                        "one of them is probably left from an older edgebnn (reinstall it from a clean "
                        "build: remove build/ before building a wheel)")
    return defs


def runtime_sources(called, runtime_dir=RUNTIME_DIR) -> dict:
    """The runtime files (name -> text) needed by the functions ``called``.

    Every header is included; a .c file is included when it defines a called
    function or a function that an included file calls (closure).
    """
    runtime_dir = Path(runtime_dir)
    if not (runtime_dir / "ebnn.h").is_file():
        raise UnsupportedOpError(f"the C runtime is missing: {runtime_dir / 'ebnn.h'} not found")
    defs = runtime_functions(runtime_dir)
    files = {p.name: p.read_text() for p in sorted(runtime_dir.glob("*.h"))}
    todo = list(called)
    seen = set()
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        src = defs.get(fn)
        if src is None or src in files:
            continue
        text = (runtime_dir / src).read_text()
        files[src] = text
        todo.extend(set(re.findall(r"\b(ebnn_\w+)\s*\(", text)))
    return dict(sorted(files.items()))


# --------------------------------------------------------------------------
# Emitter: the handlers' view of the C being written


#: Constants of at least this many values are written as the byte image of a
#: string literal (:meth:`CWriter.byte_array`), smaller ones as decimal
#: lists a reader can follow. The byte images are little-endian; the
#: generated C refuses (``#error``) to compile for a big-endian target.
BYTE_ARRAY_MIN = 64


class Emitter:
    def __init__(self, name, ctx, locations, kernels, defs):
        self.name = name
        self.ctx = ctx
        self.locations = locations  # tensor -> ("input"|"output"|"arena", offset)
        self.kernel_set = kernel_set(kernels, where="kernels")
        self.kernels = self.kernel_set.name  # the set's name: ops choose weight layouts by it
        self.defs = defs
        self.data = CWriter()
        self.params_w = CWriter()
        self.code = CWriter()
        self.consts = {}  # tensor index or key -> C identifier
        self.weights_bytes = 0
        self.called = set()
        self.calls = []
        self.scratch_offsets = {}

    # -- data
    def const(self, index, ctype):
        if index is None or index < 0:
            return "NULL"
        if index in self.consts:
            return self.consts[index]
        t = self.ctx.tensor(index)
        if not t.is_constant:
            raise TFLiteFormatError(f"tensor {index} ('{t.name}') was expected to be constant")
        want = {"float": "float32", "int32_t": "int32", "int8_t": "int8"}[ctype]
        if t.dtype != want:
            raise UnsupportedOpError(f"constant tensor {index} ('{t.name}') has dtype {t.dtype}, expected {want}")
        ident = self._array(f"{self.name}_t{index}", t.data, ctype, f"tensor {index} '{t.name}' {list(t.shape)} {t.dtype}")
        self.consts[index] = ident
        return ident

    def const_array(self, key, values, ctype, note=""):
        if key in self.consts:
            return self.consts[key]
        ident = self._array(f"{self.name}_{key}", values, ctype, note)
        self.consts[key] = ident
        return ident

    def _array(self, ident, values, ctype, note):
        flat = np.asarray(values).ravel()
        if flat.size == 0:
            raise UnsupportedOpError(f"constant {note or ident} is empty; C99 has no zero-length arrays")
        if ctype == "float":
            flat = flat.astype(np.float32)
            fmt, per_line = c_float, 8
        elif ctype == "int8_t":
            flat = flat.astype(np.int8)
            fmt, per_line = c_int32, 16
        else:
            flat = flat.astype(np.int32)
            fmt, per_line = c_int32, 8
        self.weights_bytes += int(flat.nbytes)
        self.data.comment(note)
        if flat.size >= BYTE_ARRAY_MIN:
            ident = self.data.byte_array(ctype, ident, flat)
        else:
            self.data.array(f"static const {ctype} {ident}[{flat.size}]", flat.tolist(), fmt, per_line)
        self.data.blank()
        return ident

    def params(self, node, ctype, fields_, suffix=None):
        """Write ``static const ctype NAME_op<i>[_suffix] = {...}``; ``fields_`` render as :func:`c_value` does."""
        ident = f"{self.name}_op{node.op.index}" + (f"_{suffix}" if suffix else "")
        self.params_w.comment(f"op {', '.join(str(i) for i in node.ops)}: {node.op_type}")
        with self.params_w.block(f"static const {ctype} {ident} =", "};"):
            for k, v in fields_:
                self.params_w.line(f".{k} = {c_value(v, f'field {k} of {ctype}')},")
        self.params_w.blank()
        return ident

    # -- pointers
    def ptr(self, index, ctype, const=False):
        t = self.ctx.tensor(index)
        if t.is_constant:
            return self.const(index, ctype if ctype != "void" else "float")
        kind, off = self.locations[index]
        q = "const " if const else ""
        if kind == "input":
            return "input"
        if kind == "output":
            return "(void *)output" if ctype == "void" else "output"
        if ctype == "void":
            return f"({q}void *)({self.name}_arena + {off})"
        return f"({q}{ctype} *)({q}void *)({self.name}_arena + {off})"

    def scratch_ptr(self, node):
        return f"(void *)({self.name}_arena + {self.scratch_offsets[id(node)]})"

    def local_pointer_array(self, node, role, ctype, ptrs, const=False):
        """A local ``op<i>_<role>`` array of ``ptrs``, for a kernel that takes a list of tensors."""
        ident = f"op{node.op.index}_{role}"
        self.code.line(f"{'const ' if const else ''}{ctype} *const {ident}[{len(ptrs)}] = {{")
        with self.code.indent():
            for p in ptrs:
                self.code.line(f"{p},")
        self.code.line("};")
        return ident

    # -- code
    def _header_comment(self, node):
        out = self.ctx.tensor(node.outputs[0]).name
        return f"op {', '.join(str(i) for i in node.ops)}: {node.op_type} -> '{out}'"

    def call(self, node, base, args):
        fn = self.kernel_set.pick(base, self.defs)
        self.called.add(fn)
        profile_index = sum(1 for c in self.calls if c["kernel"])
        self.calls.append({"ops": list(node.ops), "type": node.op_type, "kernel": fn,
                           "output": self.ctx.tensor(node.outputs[0]).name,
                           "profile_index": profile_index})
        self.code.comment(self._header_comment(node))
        self.code.line(f"status = {fn}({', '.join(args)});")
        self.code.line("if (status != EBNN_OK) return (int)status;")
        self.code.line(f"EBNN_PROFILE_OP({profile_index});")

    def alias_comment(self, node):
        src = self.ctx.tensor(node.inputs[0]).name
        self.calls.append({"ops": list(node.ops), "type": node.op_type, "kernel": None,
                           "output": self.ctx.tensor(node.outputs[0]).name})
        self.code.comment(f"{self._header_comment(node)}: same memory as '{src}', no call")


# --------------------------------------------------------------------------
# The generator


def _read(model):
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), None
    path = Path(model)
    if not path.is_file():
        raise TFLiteFormatError(f"model file not found: {path}")
    return path.read_bytes(), path


def build_nodes(graph, *, fuse=True, residual_adds=False):
    """Parse every op into a handler and run the graph passes.

    ``residual_adds``: merge bconv -> ADD residual pairs
    (:func:`passes.residual_adds`); :func:`generate` turns it on when the
    kernel set's merged kernel is the same variant as its bconv.
    """
    ctx = _Context(graph)
    nodes = []
    for op, covered in passes.dilated_convolutions(graph):
        cls = ops_int8.lookup(op, graph) or O.lookup(op, graph.source)
        node = cls(op, ctx)
        if len(covered) > 1:
            node.ops = tuple(o.index for o in covered)
            node.op_type = " -> ".join(o.type for o in covered) + f" (as a dilated {op.type})"
        nodes.append(node)
    outs = set(graph.outputs)
    nodes = passes.binary_dense(nodes, outs)
    nodes = passes.level_convolutions(nodes, outs)
    if fuse:
        nodes = passes.fuse_chains(nodes, outs)
        nodes = passes.fuse_int8_chains(nodes, outs)
    if residual_adds:
        nodes = passes.residual_adds(nodes, outs)
    nodes = passes.drop_dead(nodes, outs)
    return ctx, nodes


def _plan(graph, nodes):
    """Tensor locations and the arena plan."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedOpError(
            f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            "the C generator supports exactly one of each"
        )
    inp, out = graph.inputs[0], graph.outputs[0]
    # alias sets: RESHAPE outputs share their input's memory
    root = {}

    def find(t):
        while root.get(t, t) != t:
            t = root[t]
        return t

    for n in nodes:
        if n.alias:
            root[n.outputs[0]] = find(n.inputs[0])
    # lifetimes per root
    first, last, size = {}, {}, {}
    for pos, n in enumerate(nodes):
        for t in n.outputs:
            r = find(t)
            first.setdefault(r, pos)
            last[r] = max(last.get(r, pos), pos)
            size[r] = max(size.get(r, 0), graph.tensor(t).nbytes or _nbytes(graph.tensor(t)))
        for t in n.inputs:
            r = find(t)
            last[r] = max(last.get(r, pos), pos)
    r_in, r_out = find(inp), find(out)
    if r_in == r_out:
        raise UnsupportedOpError("the model's output is its input (reshaped); nothing to compute")
    buffers = [Buffer(("t", r), size[r], first[r], last[r]) for r in sorted(first) if r not in (r_in, r_out)]
    for pos, n in enumerate(nodes):
        if n.scratch_bytes:
            buffers.append(Buffer(("scratch", pos), n.scratch_bytes, pos, pos))
    plan = plan_arena(buffers)
    locations = {}
    every = set(first) | {inp} | {t for n in nodes for t in n.inputs}
    for t in sorted(every | set(root)):
        r = find(t)
        if r == r_in:
            locations[t] = ("input", 0)
        elif r == r_out:
            locations[t] = ("output", 0)
        elif ("t", r) in plan.offsets:
            locations[t] = ("arena", plan.offsets[("t", r)])
    scratch = {id(n): plan.offsets[("scratch", pos)] for pos, n in enumerate(nodes) if n.scratch_bytes}
    # peak scratch: largest scratch buffer (they are never alive together)
    peak_scratch = max((n.scratch_bytes for n in nodes), default=0)
    return locations, plan, scratch, peak_scratch


def _io_ctype(inp, out) -> str:
    """The C element type of the API: float for float32 I/O, int8_t for int8 I/O."""
    types = {"float32": "float", "int8": "int8_t"}
    if inp.dtype not in types or out.dtype != inp.dtype:
        raise UnsupportedOpError(
            f"the model's input '{inp.name}' is {inp.dtype} and its output '{out.name}' is {out.dtype}; "
            "the C API takes and returns float32 or int8 (both the same type)")
    if inp.dtype == "int8":
        for t, role in ((inp, "input"), (out, "output")):
            q = t.quantization
            if q is None or len(q.scale) != 1:
                raise UnsupportedOpError(f"the model's int8 {role} '{t.name}' needs one scale and zero point, "
                                         f"found {0 if q is None else len(q.scale)} scales")
    return types[inp.dtype]


def _quant_macros(w, prefix, inp, out):
    """NAME_INPUT_SCALE, NAME_INPUT_ZERO_POINT, ...: real = scale * (q - zero_point)."""
    w.comment("Quantization of the int8 input and output: real = SCALE * (q - ZERO_POINT).")
    for what, t in (("INPUT", inp), ("OUTPUT", out)):
        q = t.quantization
        w.line(f"#define {prefix}_{what}_SCALE {c_float(float(np.float32(q.scale[0])))}")
        w.line(f"#define {prefix}_{what}_ZERO_POINT ({int(q.zero_point[0]) if q.zero_point else 0})")


def _nbytes(t):
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def _shape_macros(w, prefix, what, shape):
    w.line(f"#define {prefix}_{what}_RANK {len(shape)}")
    for i, d in enumerate(shape):
        w.line(f"#define {prefix}_{what}_DIM{i} {int(d)}")
    w.line(f"#define {prefix}_{what}_SHAPE {{{', '.join(str(int(d)) for d in shape)}}}")


def _banner(w, what, name, sha, command, graph):
    w.block_comment([
        f"{what} of the model '{name}', generated by edgebnn {__version__}.",
        f"Command: {command}",
        f"Model SHA-256: {sha}",
        f"Model: {graph.size} bytes, {len(graph.ops)} ops ({', '.join(f'{k} x{v}' for k, v in graph.op_types().items())})",
        "Do not edit: regenerate with `edgebnn export`.",
    ])


def generate(model, *, name="model", target=None, fuse=None, command=None, kernels=None) -> GeneratedModel:
    """Generate C99 sources that run ``model`` with the edgebnn runtime.

    The generated ``NAME_invoke(input, output)`` computes what LCE's
    interpreter computes: bitpacked and integer results exactly, float
    results up to float rounding of sums taken in a different order.

    Example:
        >>> gen = generate("model.tflite", name="mnist")  # doctest: +SKIP
        >>> sorted(gen.files)[:2], gen.arena_bytes  # doctest: +SKIP
        (['Makefile', 'ebnn.h'], 6784)

    Args:
        model: path of a .tflite file, or its bytes.
        name: C identifier prefix of the generated API.
        target: an :class:`edgebnn.targets.Target` (kernel set, compiler and
            flags for the Makefile) or None for the host's ``cc``.
        fuse: compute conv -> pool -> batchnorm -> binarize chains in row
            slices (less RAM, same results); None takes the target's
            (``fuse`` in its file: on for microcontrollers, off for hosts and
            Linux boards, where the unfused ``_opt`` kernels are faster), and
            True without a target.
        command: the command line recorded in each file's header.
        kernels: a kernel set of :data:`edgebnn.toolchain.KERNEL_SETS`
            (``"ref"``: the portable ``_ref`` kernels; ``"opt"``: the ``_opt``
            variants where the runtime has one, same results bit for bit,
            more stack); None takes the target's.

    Returns:
        a :class:`GeneratedModel`.

    Raises:
        TFLiteFormatError: the file is not a readable flatbuffer.
        UnsupportedOpError: an op or option the generator cannot handle
            (the message names the op, its index and the supported ops).
    """
    check_name(name)
    data, path = _read(model)
    graph = fold_weight_computations(load_graph(data, name=str(path) if path else None))
    tc = toolchain_for(target, kernels=kernels)
    if fuse is None:
        fuse = tc.target.fuse if tc.target is not None else True
    if command is None:
        command = f"edgebnn.codegen.generate({path.name if path else '<bytes>'!s}, name={name!r}, fuse={fuse})"
    inp, out = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[-1])
    io_ctype = _io_ctype(inp, out)
    defs = runtime_functions()
    # bconv -> ADD as one call only where that call is as fast a variant as
    # the bconv alone (the mcu set has no ebnn_bconv2d_add_mcu)
    variant = lambda base: tc.kernels.pick(base, defs).rsplit("_", 1)[1]  # noqa: E731
    ctx, nodes = build_nodes(graph, fuse=fuse,
                             residual_adds=variant("ebnn_bconv2d_add") == variant("ebnn_bconv2d"))
    locations, plan, scratch, peak_scratch = _plan(graph, nodes)
    em = Emitter(name, ctx, locations, tc.kernels, defs)
    em.scratch_offsets = scratch
    for n in nodes:
        n.emit(em)

    upper = name.upper()
    sha = graph.sha256
    arena = max(plan.size, ALIGN)

    h = CWriter()
    _banner(h, "Public API", name, sha, command, graph)
    guard = f"EDGEBNN_{upper}_H_"
    h.line(f"#ifndef {guard}")
    h.line(f"#define {guard}")
    h.blank()
    h.line("#ifdef __cplusplus")
    h.line('extern "C" {')
    h.line("#endif")
    h.blank()
    if io_ctype == "int8_t":
        h.line("#include <stdint.h>")
        h.blank()
    h.line(f'#define {upper}_MODEL_SHA256 "{sha}"')
    h.line(f"#define {upper}_INPUT_SIZE {int(np.prod(inp.shape))}")
    h.line(f"#define {upper}_OUTPUT_SIZE {int(np.prod(out.shape))}")
    h.line(f"#define {upper}_ARENA_BYTES {arena}")
    h.line(f"#define {upper}_ARENA_BOUND_BYTES {plan.bound} /* no plan of these buffers is smaller */")
    h.line(f"#define {upper}_SCRATCH_BYTES {peak_scratch}")
    h.line(f"#define {upper}_WEIGHTS_BYTES {em.weights_bytes}")
    h.line(f"#define {upper}_KERNEL_CALLS {sum(1 for k in em.calls if k['kernel'])} "
           "/* ebnn_profile_op() indices 0.. in an EBNN_PROFILE build */")
    _shape_macros(h, upper, "INPUT", inp.shape)
    _shape_macros(h, upper, "OUTPUT", out.shape)
    what = "floats"
    if io_ctype == "int8_t":
        what = "int8 values"
        h.comment("Set for int8 I/O: input and output are int8_t.")
        h.line(f"#define {upper}_IO_INT8 1")
        _quant_macros(h, upper, inp, out)
    h.blank()
    h.block_comment([
        f"Run the model on one input of {upper}_INPUT_SIZE {what} (shape {upper}_INPUT_SHAPE,",
        f"row-major NHWC) and write {upper}_OUTPUT_SIZE {what} to output.",
        "Returns 0 (EBNN_OK) or the runtime's error code. Not reentrant: the",
        f"activations live in one static arena of {upper}_ARENA_BYTES bytes.",
    ])
    h.line(f"int {name}_invoke(const {io_ctype} *input, {io_ctype} *output);")
    h.blank()
    h.line("#ifdef __cplusplus")
    h.line("}")
    h.line("#endif")
    h.blank()
    h.line(f"#endif /* {guard} */")

    c = CWriter()
    _banner(c, "Weights, memory plan and calls", name, sha, command, graph)
    c.line(f"#include {c_include(name + '.h')}")
    c.blank()
    c.line("#include <math.h> /* NAN, INFINITY: constants may hold them */")
    c.line("#include <stddef.h>")
    c.line("#include <stdint.h>")
    c.blank()
    c.line('#include "ebnn.h"')
    c.blank()
    c.comment("Large constants are little-endian byte images (string literals in unions).")
    c.line("#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__")
    c.line(f'#error "{name}.c holds little-endian constants; this target is big-endian"')
    c.line("#endif")
    c.blank()
    c.block_comment([
        f"Memory: {em.weights_bytes} bytes of constants, an arena of {arena} bytes "
        f"(of which at most {peak_scratch} bytes of fused-kernel scratch); the lower bound,",
        f"the largest sum of buffers alive at one op, is {plan.bound} bytes.",
        "Arena offsets come from tensor lifetimes: tensors never alive together share bytes.",
    ])
    c.line("#if defined(__GNUC__) || defined(__clang__)")
    c.line(f"#define {upper}_ALIGNED __attribute__((aligned({ALIGN})))")
    c.line("#else")
    c.line(f"#define {upper}_ALIGNED")
    c.line("#endif")
    c.line(f"static unsigned char {name}_arena[{upper}_ARENA_BYTES] {upper}_ALIGNED;")
    c.blank()
    c.comment("---- constants ----")
    c.lines(em.data.text().rstrip("\n").split("\n") if em.consts else [])
    c.blank()
    c.comment("---- kernel parameters ----")
    c.lines(em.params_w.text().rstrip("\n").split("\n"))
    c.blank()
    with c.block(f"int {name}_invoke(const {io_ctype} *input, {io_ctype} *output)"):
        c.line("ebnn_status_t status;")
        c.line("if (input == NULL || output == NULL) return (int)EBNN_ERROR_NULL_POINTER;")
        c.line("EBNN_PROFILE_OP(-1);")
        c.lines(em.code.text().rstrip("\n").split("\n"))
        c.line("(void)input;")
        c.line(f"(void){name}_arena; /* unused when no tensor lives in the arena */")
        c.line("return (int)EBNN_OK;")

    files = {f"{name}.h": h.text(), f"{name}.c": c.text()}
    files.update(runtime_sources(sorted(em.called)))
    files["Makefile"] = _makefile(name, files, tc, sha, command)
    return GeneratedModel(
        files=dict(sorted(files.items())),
        weights_bytes=em.weights_bytes,
        arena_bytes=arena,
        scratch_bytes=peak_scratch,
        input_shape=tuple(int(d) for d in inp.shape),
        output_shape=tuple(int(d) for d in out.shape),
        input_size=int(np.prod(inp.shape)),
        output_size=int(np.prod(out.shape)),
        name=name,
        sha256=sha,
        ops=em.calls,
        io_dtype=inp.dtype,
        input_quantization=_scale_zp(inp) if io_ctype == "int8_t" else (),
        output_quantization=_scale_zp(out) if io_ctype == "int8_t" else (),
        arena_bound_bytes=plan.bound,
    )


def _scale_zp(t):
    q = t.quantization
    return (float(np.float32(q.scale[0])), int(q.zero_point[0]) if q.zero_point else 0)


def _makefile(name, files, tc, sha, command):
    """A Makefile building lib<name>.a with the flags of :mod:`edgebnn.toolchain`."""
    flags = list(tc.cflags)  # a library is only compiled: no link flags
    srcs = sorted(f for f in files if f.endswith(".c"))
    cc, ar = tc.cc, tc.ar
    where = f"the toolchain of target '{tc.name}'" if tc.target is not None else "the host toolchain"
    lines = [
        f"# Build of the model '{name}', generated by edgebnn {__version__}.",
        f"# Command: {make_comment(command)}",
        f"# Model SHA-256: {sha}",
        "# `make` builds lib$(NAME).a; override CC, AR or CFLAGS on the command line.",
        "",
        f"NAME = {name}",
        f"CC = {make_word(cc, what=f'the compiler of {where}')}",
        f"AR = {make_word(ar, what=f'the archiver of {where}')}",
        f"CFLAGS = {' '.join(make_word(f, what=f'a compiler flag of {where}') for f in flags)}",
        f"SRCS = {' '.join(make_word(f, what='a generated source name') for f in srcs)}",
        "OBJS = $(SRCS:.c=.o)",
        "",
        "lib$(NAME).a: $(OBJS)",
        "\t$(AR) rcs $@ $(OBJS)",
        "",
        "%.o: %.c $(wildcard *.h)",
        "\t$(CC) $(CFLAGS) -c $< -o $@",
        "",
        "clean:",
        "\trm -f $(OBJS) lib$(NAME).a",
        "",
        ".PHONY: clean",
    ]
    return "\n".join(lines) + "\n"


def generate_sources(model, **kw) -> dict:
    """The files of :func:`generate` only: relative path -> content."""
    return generate(model, **kw).files


def c_array_sources(model, *, name="model", command=None) -> dict:
    """The flatbuffer itself as a C array (TFLite Micro's convention).

    ``NAME.h`` declares ``extern const unsigned char NAME_tflite[]`` and
    ``NAME_tflite_len``; ``NAME.cc`` defines them with C++11/C11
    ``alignas(16)`` (the TFLite schema asks for 16-byte aligned buffers), as
    TFLite Micro's ``xxd``-style model files do.
    """
    check_name(name)
    data, path = _read(model)
    graph = load_graph(data, name=str(path) if path else None)
    if command is None:
        command = f"edgebnn.codegen.c_array_sources({path.name if path else '<bytes>'}, name={name!r})"
    h = CWriter()
    _banner(h, "The flatbuffer as a C array", name, graph.sha256, command, graph)
    guard = f"EDGEBNN_{name.upper()}_TFLITE_H_"
    h.lines([f"#ifndef {guard}", f"#define {guard}", ""])
    h.line(f"extern const unsigned char {name}_tflite[];")
    h.line(f"extern const unsigned int {name}_tflite_len;")
    h.lines(["", f"#endif /* {guard} */"])
    cc = CWriter()
    _banner(cc, "The flatbuffer as a C array", name, graph.sha256, command, graph)
    cc.line(f"#include {c_include(name + '.h')}")
    cc.blank()
    cc.comment("alignas: a keyword in C++11; compiled as C11, <stdalign.h> defines it.")
    cc.line("#ifndef __cplusplus")
    cc.line("#include <stdalign.h>")
    cc.line("#endif")
    cc.blank()
    cc.array(f"alignas(16) const unsigned char {name}_tflite[{len(data)}]", list(data),
             lambda b: f"0x{b:02x}", per_line=12)
    cc.line(f"const unsigned int {name}_tflite_len = {len(data)};")
    return {f"{name}.h": h.text(), f"{name}.cc": cc.text()}
