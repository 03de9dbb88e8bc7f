"""larq-zoo's own ``Lambda`` layers, recognised without running them and replaced by built-ins.

Two larq-zoo 2.4.0 models hold Keras ``Lambda`` layers: MeliusNet22 (its
grouped convolutions split and concatenate through
``larq_zoo.core.utils.TFOpLayer``, and each improvement block merges with
``x[0] + tf.pad(x[1], ...)``) and RealToBinaryNet (an identity ``lambda x:
x`` names each block's output). A saved ``Lambda`` stores its function as
marshalled Python bytecode plus its closure values, and loading it runs that
bytecode, so :mod:`edgebnn.modelcheck` refuses every ``Lambda``.

This module lets exactly these functions through, without unmarshalling or
running anything from the file:

1. the stored bytecode is read by :func:`read_marshal`, a pure-Python reader
   of the ``marshal`` format that builds plain tuples, never a code object;
2. the result is compared with the same reading of the installed larq-zoo
   function's code object: every field (instructions, constants, names,
   line table, nested code) must be equal; only ``co_filename`` (where
   larq-zoo was installed on the saving machine) is ignored;
3. the closure values stored beside the code are plain JSON, checked against
   what larq-zoo's builders pass (e.g. ``tf.split`` with an int and an axis);
4. the layer config is replaced by built-in layers that compute the same
   function: ``TFOpLambda`` (``tf.split``, ``tf.pad``, ``+``), ``Concatenate``
   and ``Activation("linear")``, with the same layer names and inbound nodes.

A ``Lambda`` of larq-zoo's modules that does not match (another larq-zoo or
Python version, other closure values) is left alone; the scan then refuses
it, and the reason it did not match is added to the refusal message. Raw
byte comparison would not do: ``marshal`` sets a reference flag on objects
depending on their reference counts, so the same code object marshals to
different bytes in different processes.

Example:
    >>> rw = replace_zoo_lambdas(config, "keras")  # doctest: +SKIP
    >>> rw.replaced[:2]  # doctest: +SKIP
    ('stem_s1_groupconv_split', 'stem_s1_groupconv_concat')
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
import inspect
import marshal
import struct
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

# --------------------------------------------------------------------------
# A data-only reader of the marshal format


class MarshalFormatError(ValueError):
    """The bytes are not a marshalled object this reader understands."""


#: Most bytes of marshalled code accepted (larq-zoo's lambdas are ~300 B).
MAX_CODE_BYTES = 64 * 1024
_MAX_DEPTH = 32
_FLAG_REF = 0x80
#: Python versions whose code objects marshal as argcount, posonlyargcount,
#: kwonlyargcount, stacksize, flags, then code, consts, names,
#: localsplusnames, localspluskinds, filename, name, qualname, firstlineno,
#: linetable, exceptiontable (CPython's marshal.c, 3.11 to 3.13).
_CODE_LAYOUT_VERSIONS = ((3, 11), (3, 12), (3, 13))
_CODE_FIELDS = ("argcount", "posonlyargcount", "kwonlyargcount", "stacksize", "flags", "code", "consts",
                "names", "localsplusnames", "localspluskinds", "filename", "name", "qualname",
                "firstlineno", "linetable", "exceptiontable")
_CODE_LONGS = frozenset({"argcount", "posonlyargcount", "kwonlyargcount", "stacksize", "flags", "firstlineno"})
_PENDING = object()


class _Reader:
    """Reads one marshalled value into tagged tuples: ``("str", "x")``, ``("code", {...})``.

    Every value carries its kind, so ``True`` and ``1`` (equal in Python)
    stay different; interned and plain strings, and short and long tuples,
    are the same kind (which form marshal picks depends on the process).
    """

    def __init__(self, data: bytes):
        self.data, self.pos, self.refs = data, 0, []

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MarshalFormatError(f"truncated at byte {self.pos}: {n} more bytes expected, "
                                     f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def long(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def size(self) -> int:
        n = self.long()
        if n < 0 or n > len(self.data) - self.pos:
            raise MarshalFormatError(f"length {n} at byte {self.pos - 4} exceeds the {len(self.data)} bytes read")
        return n

    def value(self, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise MarshalFormatError(f"nested deeper than {_MAX_DEPTH} levels")
        at = self.pos
        byte = self.take(1)[0]
        kind, flagged = chr(byte & ~_FLAG_REF), bool(byte & _FLAG_REF)
        slot = None
        if flagged:
            slot = len(self.refs)
            self.refs.append(_PENDING)
        out = self._read(kind, at, depth)
        if flagged:
            self.refs[slot] = out
        return out

    def _read(self, kind: str, at: int, depth: int):
        simple = {"N": ("none", None), "F": ("bool", False), "T": ("bool", True), ".": ("ellipsis", None)}
        if kind in simple:
            return simple[kind]
        if kind == "i":
            return ("int", self.long())
        if kind == "l":
            n = self.long()
            digits = [struct.unpack("<H", self.take(2))[0] for _ in range(min(abs(n), len(self.data)))]
            if any(d >= 1 << 15 for d in digits):
                raise MarshalFormatError(f"long at byte {at} has a digit of 15 bits or more")
            return ("int", (-1 if n < 0 else 1) * sum(d << (15 * i) for i, d in enumerate(digits)))
        if kind == "g":
            return ("float", struct.unpack("<d", self.take(8))[0])
        if kind == "s":
            return ("bytes", self.take(self.size()))
        if kind in "tuaA":
            raw = self.take(self.size())
            return ("str", self._text(raw, kind, at))
        if kind in "zZ":
            return ("str", self._text(self.take(self.take(1)[0]), kind, at))
        if kind in "()":
            n = self.take(1)[0] if kind == ")" else self.size()
            return ("tuple", tuple(self.value(depth + 1) for _ in range(n)))
        if kind == "r":
            i = self.long()
            if not 0 <= i < len(self.refs) or self.refs[i] is _PENDING:
                raise MarshalFormatError(f"reference {i} at byte {at} names no completed object")
            return self.refs[i]
        if kind == "c":
            fields = {}
            for name in _CODE_FIELDS:
                fields[name] = ("int", self.long()) if name in _CODE_LONGS else self.value(depth + 1)
            return ("code", tuple(sorted(fields.items())))
        raise MarshalFormatError(f"type code {kind!r} at byte {at} is not one this reader accepts")

    @staticmethod
    def _text(raw: bytes, kind: str, at: int) -> str:
        try:
            return raw.decode("ascii" if kind in "aAzZ" else "utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise MarshalFormatError(f"string at byte {at} does not decode: {exc}") from exc


def read_marshal(data: bytes):
    """Read marshalled ``data`` into tagged tuples, creating no code object.

    Only the types a function's code is made of are read (None, booleans,
    ints, floats, bytes, strings, tuples, code objects and back-references);
    anything else raises. The layout of a code object is that of the running
    Python (3.11 to 3.13); code marshalled by another version does not read.

    Example:
        >>> read_marshal(marshal.dumps((1, "a")))
        ('tuple', (('int', 1), ('str', 'a')))

    Raises:
        MarshalFormatError: truncated, trailing or unknown data, more than
            :data:`MAX_CODE_BYTES`, or a Python without a known code layout.
    """
    if sys.version_info[:2] not in _CODE_LAYOUT_VERSIONS:
        raise MarshalFormatError(f"Python {sys.version_info[0]}.{sys.version_info[1]}: this reader knows the "
                                 "code layout of Python 3.11 to 3.13 only")
    if len(data) > MAX_CODE_BYTES:
        raise MarshalFormatError(f"{len(data):,} bytes; expected at most {MAX_CODE_BYTES:,}")
    reader = _Reader(bytes(data))
    out = reader.value()
    if reader.pos != len(data):
        raise MarshalFormatError(f"{len(data) - reader.pos} bytes left after the object")
    return out


def _without_filenames(value):
    """``value`` with every code object's ``filename`` set to None (where the package was installed)."""
    kind, body = value
    if kind == "code":
        return ("code", tuple((k, ("none", None) if k == "filename" else _without_filenames(v)) for k, v in body))
    if kind == "tuple":
        return ("tuple", tuple(_without_filenames(v) for v in body))
    return value


def same_code(stored_b64: str, code) -> Tuple[bool, str]:
    """Whether base64 ``stored_b64`` (Keras's ``func_dump``) is the code object ``code``.

    Returns:
        ``(True, "")``, or ``(False, why)``.
    """
    try:
        raw = base64.b64decode(stored_b64.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        return False, f"its function is not base64 text ({exc})"
    try:
        stored = read_marshal(raw)
    except MarshalFormatError as exc:
        return False, f"its stored bytecode does not read as a code object of this Python ({exc})"
    want = _without_filenames(read_marshal(marshal.dumps(code)))
    if stored[0] != "code":
        return False, f"its stored function is a {stored[0]}, not a code object"
    if _without_filenames(stored) != want:
        return False, (f"its bytecode differs from {code.co_qualname} of the installed larq-zoo "
                       f"(Python {sys.version_info[0]}.{sys.version_info[1]})")
    return True, ""


# --------------------------------------------------------------------------
# The known functions and their replacements


class _NoMatch(Exception):
    """A known function whose closure values are not the ones larq-zoo passes."""


@dataclass(frozen=True)
class ZooLambda:
    """One larq-zoo function a ``Lambda`` may hold, and what replaces it.

    Attributes:
        module: the module the Lambda's config names (and the function lives in).
        owner: the attribute path of the function that defines the lambda.
        qualname: the lambda's ``co_qualname``.
        replace: ``(layer, closure, fmt, names) -> [layer configs]``; raises
            :class:`_NoMatch` when the closure is not one larq-zoo builds.
    """

    module: str
    owner: str
    qualname: str
    replace: Callable

    def code(self):
        """The lambda's code object in the installed larq-zoo."""
        obj = importlib.import_module(self.module)
        for part in self.owner.split("."):
            obj = getattr(obj, part)
        for const in inspect.unwrap(obj).__code__.co_consts:
            if getattr(const, "co_qualname", None) == self.qualname:
                return const
        raise LookupError(f"{self.module}.{self.owner} defines no {self.qualname}")


_ZOO_LAMBDAS: Dict[str, ZooLambda] = {}


def register_zoo_lambda(module: str, owner: str):
    """Register the replacement of the lambda defined in ``module.owner``."""
    qualname = f"{owner}.<locals>.<lambda>"

    def deco(fn):
        _ZOO_LAMBDAS[qualname] = ZooLambda(module=module, owner=owner, qualname=qualname, replace=fn)
        return fn

    return deco


def zoo_lambda_names() -> list:
    """Qualified names of the larq-zoo lambdas that are replaced."""
    return sorted(_ZOO_LAMBDAS)


def _layer(fmt: str, class_name: str, config: dict, inbound, *, module: str, registered=None) -> dict:
    out = {"class_name": class_name, "config": config, "name": config["name"], "inbound_nodes": inbound}
    if fmt == "keras":
        out.update(module=module, registered_name=registered)
    return out


def _base(layer: dict, name=None) -> dict:
    cfg = layer["config"]
    return {"name": name or cfg["name"], "trainable": cfg.get("trainable", True), "dtype": cfg.get("dtype", "float32")}


def _one_node(layer: dict, n_inputs=None) -> list:
    """The Lambda's single call: its inbound entries ``[layer, node, tensor]`` (``n_inputs`` of
    them, or any number >= 1 when None), each without call arguments."""
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], list):
        raise _NoMatch(f"it should be called once; found inbound nodes {nodes!r}")
    entries = nodes[0]
    ok = all(isinstance(e, list) and len(e) in (3, 4) and isinstance(e[0], str)
             and all(isinstance(i, int) and not isinstance(i, bool) for i in e[1:3])
             and (len(e) == 3 or e[3] == {}) for e in entries)
    if not ok or not entries or (n_inputs is not None and len(entries) != n_inputs):
        raise _NoMatch(f"it should take {n_inputs or 'one or more'} input tensor(s) without call arguments; "
                       f"found {entries!r}")
    return [list(e[:3]) for e in entries]


def _int(value, what: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _NoMatch(f"{what} should be an int >= {low}; found {value!r}")
    return value


def _tf_function_name(value, fmt: str) -> str:
    """The TensorFlow function a closure names: ``"split"`` in .h5, a builtins function object in .keras."""
    if fmt == "h5" and isinstance(value, str):
        return value
    if (fmt == "keras" and isinstance(value, dict) and value.get("class_name") == "function"
            and value.get("module") == "builtins" and isinstance(value.get("config"), str)):
        return value["config"]
    raise _NoMatch(f"its wrapped TensorFlow function should be stored as a name; found {value!r}")


_TFOP = "tf_keras.src.layers.core.tf_op_layer"


@register_zoo_lambda("larq_zoo.core.utils", "TFOpLayer")
def _tf_op_layer(layer, closure, fmt, names):
    """``TFOpLayer(tf.split, g, axis=a)`` -> TFOpLambda split; ``TFOpLayer(tf.concat, axis=a)`` -> Concatenate."""
    if not isinstance(closure, list) or len(closure) != 3:
        raise _NoMatch(f"its closure should be (args, kwargs, tf_op); found {closure!r}")
    args, kwargs, op = closure
    op = _tf_function_name(op, fmt)
    if not isinstance(kwargs, dict) or set(kwargs) != {"axis"}:
        raise _NoMatch(f"the wrapped {op} should get only axis=; found keyword arguments {kwargs!r}")
    axis = _int(kwargs["axis"], "axis", -8)
    if op == "split":
        if not isinstance(args, list) or len(args) != 1:
            raise _NoMatch(f"tf.split should get one positional argument (the number of groups); found {args!r}")
        groups = _int(args[0], "the number of groups", 1)
        (src,) = _one_node(layer, 1)
        call = {"num_or_size_splits": groups, "axis": axis}
        return [_layer(fmt, "TFOpLambda", {**_base(layer), "function": "split"}, [src + [call]],
                       module=_TFOP, registered="TFOpLambda")]
    if op == "concat":
        if args != []:
            raise _NoMatch(f"tf.concat should get no positional argument besides its inputs; found {args!r}")
        srcs = _one_node(layer)
        if len(srcs) < 2:
            raise _NoMatch(f"tf.concat should join two or more tensors; found {len(srcs)}")
        return [_layer(fmt, "Concatenate", {**_base(layer), "axis": axis}, [[s + [{}] for s in srcs]],
                       module="keras.layers")]
    raise _NoMatch(f"it wraps TensorFlow function '{op}'; only split and concat are replaced")


@register_zoo_lambda("larq_zoo.literature.meliusnet", "MeliusNetFactory.improvement_block")
def _melius_merge(layer, closure, fmt, names):
    """``x[0] + tf.pad(x[1], [[0, 0], [0, 0], [0, 0], [f_in - 64, 0]])`` -> TFOpLambda pad, then ``+``."""
    if not isinstance(closure, list) or len(closure) != 1:
        raise _NoMatch(f"its closure should be (f_in,); found {closure!r}")
    f_in = _int(closure[0], "f_in (the channels of the block's input)", 64)
    x0, x1 = _one_node(layer, 2)
    name = layer["config"]["name"]
    pad_name = _fresh(f"{name}_pad", names)
    paddings = [[0, 0], [0, 0], [0, 0], [f_in - 64, 0]]
    pad = _layer(fmt, "TFOpLambda", {**_base(layer, pad_name), "function": "pad"},
                 [x1 + [{"paddings": paddings}]], module=_TFOP, registered="TFOpLambda")
    add = _layer(fmt, "TFOpLambda", {**_base(layer), "function": "__operators__.add"},
                 [x0 + [{"y": [pad_name, 0, 0], "name": None}]], module=_TFOP, registered="TFOpLambda")
    return [pad, add]


@register_zoo_lambda("larq_zoo.literature.real_to_bin_nets", "StrongBaselineNetFactory.block")
def _identity(layer, closure, fmt, names):
    """``lambda x: x`` -> ``Activation("linear")`` (which returns its input)."""
    if closure is not None:
        raise _NoMatch(f"the identity has no closure; found {closure!r}")
    (src,) = _one_node(layer, 1)
    return [_layer(fmt, "Activation", {**_base(layer), "activation": "linear"}, [[src + [{}]]],
                   module="keras.layers")]


def _fresh(name: str, names: set) -> str:
    out, i = name, 1
    while out in names:
        out, i = f"{name}_{i}", i + 1
    names.add(out)
    return out


# --------------------------------------------------------------------------
# Rewriting a model config


@dataclass(frozen=True)
class LambdaRewrite:
    """What :func:`replace_zoo_lambdas` did.

    Attributes:
        config: the config with the recognised Lambda layers replaced (the
            input itself when nothing was replaced).
        replaced: names of the replaced Lambda layers.
        unmatched: ``(layer name, reason)`` for Lambda layers of larq-zoo's
            modules left in place.
    """

    config: dict
    replaced: tuple = ()
    unmatched: tuple = ()


def _match(layer: dict, fmt: str):
    """The :class:`ZooLambda` ``layer`` holds and its closure, or raise :class:`_NoMatch`."""
    cfg = layer.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
        raise _NoMatch("its config has no name")
    fields = {"function_type": "lambda", "output_shape": None, "arguments": {}}
    for key, want in fields.items():
        if cfg.get(key, want) != want:
            raise _NoMatch(f"its {key} should be {want!r}; found {cfg.get(key)!r}")
    if cfg.get("output_shape_type", "raw") != "raw" or cfg.get("mask") is not None:
        raise _NoMatch("it stores an output shape or mask function")
    fn = cfg.get("function")
    if not (isinstance(fn, list) and len(fn) == 3 and isinstance(fn[0], str)):
        raise _NoMatch("its function should be stored as [bytecode, defaults, closure]")
    code_b64, defaults, closure = fn
    if defaults is not None:
        raise _NoMatch(f"larq-zoo's lambdas have no default arguments; found {defaults!r}")
    candidates = [z for z in _ZOO_LAMBDAS.values() if z.module == cfg.get("module")]
    if not candidates:
        known = ", ".join(sorted({z.module for z in _ZOO_LAMBDAS.values()}))
        raise _NoMatch(f"its module '{cfg.get('module')}' defines none of the known lambdas (modules {known})")
    reasons = []
    for z in candidates:
        ok, why = same_code(code_b64, z.code())
        if ok:
            return z, closure
        reasons.append(why)
    raise _NoMatch("; ".join(reasons))


def _rewrite_layers(layers: list, fmt: str, names: set, replaced: list, unmatched: list) -> list:
    out = []
    for layer in layers:
        if not isinstance(layer, dict):
            out.append(layer)
            continue
        if layer.get("class_name") in ("Functional", "Model"):
            out.append(_rewrite_model(layer, fmt, replaced, unmatched))
            continue
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        module = cfg.get("module")
        if layer.get("class_name") != "Lambda" or not (isinstance(module, str) and module.startswith("larq_zoo")):
            out.append(layer)
            continue
        try:
            zoo, closure = _match(layer, fmt)
            new = zoo.replace(layer, copy.deepcopy(closure), fmt, names)
        except _NoMatch as exc:
            unmatched.append((cfg.get("name"), str(exc)))
            out.append(layer)
            continue
        if "build_config" in layer and fmt == "keras":
            new[0]["build_config"] = layer["build_config"]
        out.extend(new)
        replaced.append(cfg["name"])
    return out


def _rewrite_model(model: dict, fmt: str, replaced: list, unmatched: list) -> dict:
    cfg = model.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        return model
    names = {layer["config"]["name"] for layer in cfg["layers"]
             if isinstance(layer, dict) and isinstance(layer.get("config"), dict) and "name" in layer["config"]}
    before = len(replaced)
    layers = _rewrite_layers(cfg["layers"], fmt, names, replaced, unmatched)
    if len(replaced) == before and all(a is b for a, b in zip(layers, cfg["layers"])):
        return model
    return {**model, "config": {**cfg, "layers": layers}}


def replace_zoo_lambdas(config: dict, fmt: str) -> LambdaRewrite:
    """Replace the larq-zoo ``Lambda`` layers of a functional model config by built-in layers.

    Only layers of functional models (the top one and nested ones) are
    looked at, and only ``Lambda`` layers whose ``module`` is larq-zoo's;
    the input config is not modified. Nothing from the file is unmarshalled
    into a code object or run (see the module docstring).

    Args:
        config: the parsed model config (``model_config`` of a .h5,
            ``config.json`` of a .keras).
        fmt: ``"h5"`` or ``"keras"`` (the two store closures differently).

    Returns:
        A :class:`LambdaRewrite`. When larq-zoo is not installed every
        larq-zoo Lambda is unmatched.
    """
    if fmt not in ("h5", "keras"):
        raise ValueError(f"fmt should be 'h5' or 'keras'; found {fmt!r}")
    if not isinstance(config, dict) or config.get("class_name") not in ("Functional", "Model"):
        return LambdaRewrite(config=config)
    from edgebnn.errors import MissingDependencyError
    from edgebnn.zoo_models import import_larq_zoo

    try:
        import_larq_zoo()
    except MissingDependencyError as exc:
        note = f"larq-zoo does not import here, so its functions cannot be compared ({exc})"
        layers = config.get("config", {}).get("layers", [])
        lambdas = [lay.get("config", {}).get("name") for lay in layers if isinstance(lay, dict)
                   and lay.get("class_name") == "Lambda"
                   and str(lay.get("config", {}).get("module", "")).startswith("larq_zoo")]
        return LambdaRewrite(config=config, unmatched=tuple((n, note) for n in lambdas))
    replaced, unmatched = [], []
    new = _rewrite_model(config, fmt, replaced, unmatched)
    return LambdaRewrite(config=new, replaced=tuple(replaced), unmatched=tuple(unmatched))
