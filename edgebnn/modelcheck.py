"""Refuse Keras model files that would run code, before anything in them is loaded.

A Keras model file is a program as much as it is data. Loading one can run
Python and TensorFlow code the file's author chose:

- a ``Lambda`` layer stores its function as Python bytecode, which tf-keras
  rebuilds and calls while loading a ``.h5`` file or a SavedModel (only the
  ``.keras`` loader refuses it, in its ``safe_mode``);
- a class name or ``module`` field that is not a Keras or Larq built-in makes
  the loader import that module and call that class;
- a SavedModel folder also holds TensorFlow graphs, and TensorFlow runs some of
  them while loading (the initializers of stored resources), so even a SavedModel
  made only of Keras built-ins can, for example, write files (``tf.io.write_file``).

:func:`check_model_file` reads the configuration stored in the file (the
``model_config`` attribute of a ``.h5`` file, ``config.json`` inside a
``.keras`` zip, ``keras_metadata.pb`` in a SavedModel) without deserializing
anything. It walks every object in it, including nested models and wrapped
layers, and raises :class:`~edgebnn.errors.UnsafeModelError` on any ``Lambda``
layer, serialized Python function, or class outside tf-keras's built-ins,
Larq's layers, quantizers, constraints and activations, and the custom objects
the caller allows. SavedModel folders are refused in any case. The user overrides
all of this for one file with ``--trust-model-code``.

Example:
    >>> check_model_file("model.h5")  # doctest: +SKIP
    'h5'
    >>> check_model_file("lambda.h5")  # doctest: +SKIP
    Traceback (most recent call last):
    UnsafeModelError: refusing to load lambda.h5: Lambda layer 'evil' ...
"""

from __future__ import annotations

import base64
import binascii
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgebnn.errors import ModelError, UnsafeModelError

TRUST_FLAG = "--trust-model-code"

#: Biggest ``config.json`` read out of a ``.keras`` zip (a model's config is
#: a few hundred kB at most; the cap keeps a zip bomb out of memory).
MAX_CONFIG_BYTES = 64 * 1024 * 1024

# Markers of Keras's own serialization for plain values: tuples, bytes,
# constants. They rebuild data, never call code.
_DATA_MARKERS = frozenset(
    {"__tuple__", "__ellipsis__", "__bytes__", "__tensor__", "__numpy__", "TensorShape", "TypeSpec"}
)

# Built-in classes that run code or load other files by design.
_CODE_CLASSES = {
    "Lambda": "a Lambda layer runs the Python function stored in the file",
    "__lambda__": "a serialized Python lambda runs when it is rebuilt",
    "TFSMLayer": "a TFSMLayer loads and runs another SavedModel",
}

# Keras's and Larq's modules whose public classes and functions a model
# config may name.
_KERAS_MODULES = ("layers", "initializers", "regularizers", "constraints", "activations")
_LARQ_MODULES = ("layers", "quantizers", "constraints", "activations", "math")
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
#: TensorFlow functions a ``TFOpLambda`` layer may name (tf-keras stores the
#: API name, e.g. ``x + y`` on Keras tensors as ``__operators__.add``, and
#: looks it up in TensorFlow's API on load: no code is stored). Only these
#: arithmetic operators, and the split and pad that replace larq-zoo's
#: Lambda layers (edgebnn/zoo_lambdas.py), are allowed; any other name is refused.
_TF_OP_FUNCTIONS = frozenset({"__operators__.add", "math.multiply", "math.add", "math.subtract", "split", "pad",
                              "compat.v1.pad"})
_MODULE_PREFIXES = ("keras.", "tf_keras.", "larq.")
_MODULE_NAMES = frozenset({"keras", "tf_keras", "larq"})


@dataclass(frozen=True)
class Allowed:
    """What a model config may name.

    Attributes:
        names: class and function names (tf-keras and Larq built-ins, plus
            the caller's custom objects).
        modules: extra module names allowed in ``module`` fields (those of
            the caller's custom objects).
    """

    names: frozenset
    modules: frozenset = frozenset()

    def module_ok(self, module) -> bool:
        if module is None:
            return True
        if not isinstance(module, str):
            return False
        return module in _MODULE_NAMES or module.startswith(_MODULE_PREFIXES) or module in self.modules


def _public_names(module) -> set:
    return {name for name, obj in vars(module).items() if not name.startswith("_") and callable(obj)}


def allowed_objects(custom_objects=None) -> Allowed:
    """The names tf-keras, Larq and ``custom_objects`` define (imports TensorFlow).

    Args:
        custom_objects: ``{name: class or function}`` the caller registers.

    Returns:
        An :class:`Allowed`.
    """
    from edgebnn._tf import import_tf

    _, tf_keras, larq = import_tf()
    names = set(_MODEL_CLASSES)
    for mod in _KERAS_MODULES:
        names |= _public_names(getattr(tf_keras, mod))
    for mod in _LARQ_MODULES:
        if hasattr(larq, mod):
            names |= _public_names(getattr(larq, mod))
    modules = set()
    for name, obj in (custom_objects or {}).items():
        names.add(name)
        module = getattr(obj, "__module__", None)
        if isinstance(module, str):
            modules.add(module)
    return Allowed(names=frozenset(names - set(_CODE_CLASSES)), modules=frozenset(modules))


# --------------------------------------------------------------------------
# Reading the stored configuration


def model_format(path) -> str:
    """``"keras"``, ``"h5"`` or ``"savedmodel"``: the loader tf-keras would use.

    Mirrors tf-keras's own choice (a ``.keras`` suffix on a zip first, then
    HDF5 content whatever the suffix, then a SavedModel folder), so the file
    that is checked is read the way it will be loaded.

    Raises:
        ModelError: the path is none of these.
    """
    import h5py

    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path} is a directory but not a SavedModel folder (no saved_model.pb)")
        return "savedmodel"
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        return "keras"
    if h5py.is_hdf5(path):
        return "h5"
    raise ModelError(
        f"cannot load {path}: it is not a Keras model (expected an HDF5 .h5 file, a .keras zip "
        "or a SavedModel folder)"
    )


def _parse_json(text, where: Path, what: str):
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelError(f"{where}: its {what} is not UTF-8 text: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{where}: its {what} is not valid JSON: {exc}") from exc


def read_h5_config(h5file, path: Path) -> dict:
    """The ``model_config`` attribute of an open ``h5py.File``, parsed.

    Raises:
        ModelError: the file holds only weights, or no model configuration.
    """
    attrs = h5file.attrs
    if "model_config" not in attrs:
        if "layer_names" in attrs or "weight_names" in attrs or "layers" in h5file:
            raise ModelError(
                f"cannot load {path}: it holds only weights (no 'model_config' attribute); edgebnn needs a whole "
                "model saved with model.save(..., save_format='h5')"
            )
        raise ModelError(
            f"cannot load {path}: it is an HDF5 file without a Keras model configuration (no 'model_config' "
            f"attribute; found attributes {sorted(attrs)})"
        )
    config = _parse_json(attrs["model_config"], path, "'model_config' attribute")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: 'model_config' should be a JSON object; found {type(config).__name__}")
    return config


def read_keras_zip_config(path: Path) -> dict:
    """``config.json`` of a ``.keras`` zip, parsed (at most :data:`MAX_CONFIG_BYTES`).

    Raises:
        ModelError: not a readable zip, no ``config.json``, or it is too big.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                info = zf.getinfo("config.json")
            except KeyError:
                raise ModelError(
                    f"{path} is a zip without config.json; expected a .keras model saved by Keras"
                ) from None
            if info.file_size > MAX_CONFIG_BYTES:
                raise ModelError(
                    f"{path}: config.json is {info.file_size:,} bytes; expected at most {MAX_CONFIG_BYTES:,}"
                )
            with zf.open(info) as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"cannot read {path} as a .keras zip: {exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ModelError(f"{path}: config.json inflates beyond {MAX_CONFIG_BYTES:,} bytes")
    config = _parse_json(data, path, "config.json")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: config.json should be a JSON object; found {type(config).__name__}")
    return config


def read_savedmodel_metadata(path: Path) -> list:
    """The Keras objects a SavedModel folder describes: one parsed JSON dict each.

    Returns ``[]`` when the folder has no ``keras_metadata.pb`` or it cannot
    be parsed (the folder is refused anyway; this only names what is in it).
    """
    meta = Path(path) / "keras_metadata.pb"
    if not meta.is_file():
        return []
    try:
        from tf_keras.protobuf import saved_metadata_pb2
    except ImportError:
        return []
    proto = saved_metadata_pb2.SavedMetadata()
    try:
        proto.ParseFromString(meta.read_bytes())
    except Exception:  # protobuf's DecodeError, or an OSError
        return []
    nodes = []
    for node in proto.nodes:
        try:
            nodes.append(json.loads(node.metadata))
        except ValueError:
            continue
    return nodes


# --------------------------------------------------------------------------
# Walking a config


@dataclass(frozen=True)
class Finding:
    """One object in a model config that would run code.

    Attributes:
        what: the object (``Lambda layer 'evil'``).
        within: the models and wrappers it sits in, innermost first.
        reason: why it is refused.
    """

    what: str
    within: tuple
    reason: str

    @property
    def where(self) -> str:
        return self.what + "".join(f" in {t}" for t in self.within)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def _looks_like_bytecode(text: str) -> bool:
    """True for base64 text that decodes to a marshalled Python code object.

    ``marshal`` writes a code object as ``c`` (``0x63``, or ``0xe3`` with its
    reference flag) followed by the argument count as a little-endian int32;
    Keras's ``func_dump`` stores exactly that, base64-encoded.
    """
    if len(text) < 24:
        return False
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return len(raw) >= 16 and raw[0] in (0x63, 0xE3) and raw[2:5] == b"\x00\x00\x00"


def _name(obj: dict):
    name = obj.get("name")
    cfg = obj.get("config")
    if name is None and isinstance(cfg, dict):
        name = cfg.get("name")
    return name if isinstance(name, str) else None


def _label(obj: dict) -> str:
    name = _name(obj)
    cls = obj.get("class_name")
    return f"'{name}' ({cls})" if name is not None else f"({cls})"


class _Walker:
    def __init__(self, allowed: Allowed):
        self.allowed = allowed
        self.findings = []

    def add(self, trail, what, reason):
        self.findings.append(Finding(what=what, within=tuple(reversed(trail)), reason=reason))

    def walk(self, value, trail=()):
        if isinstance(value, dict):
            if "class_name" in value:
                trail, descend = self.check_object(value, trail)
                if not descend:
                    return
            self.check_function_fields(value, trail)
            for v in value.values():
                self.walk(v, trail)
        elif isinstance(value, list):
            for v in value:
                self.walk(v, trail)
        elif isinstance(value, str) and _looks_like_bytecode(value):
            self.add(trail, "a string", "it holds Python bytecode (a serialized function)")

    def check_object(self, obj: dict, trail) -> tuple:
        """Check one ``{"class_name": ...}`` object; return ``(trail, descend)``."""
        cls = obj.get("class_name")
        what = f"layer {_label(obj)}" if isinstance(obj.get("config"), dict) else f"object {_label(obj)}"
        if not isinstance(cls, str):
            self.add(trail, what, f"its class_name should be a string; found {type(cls).__name__}")
            return trail, False
        if cls in _DATA_MARKERS:
            return trail, True
        if cls in _CODE_CLASSES:
            name = _name(obj)
            self.add(trail, "a serialized lambda" if cls == "__lambda__" else
                     f"{cls} layer" + (f" '{name}'" if name else ""), _CODE_CLASSES[cls])
            return trail, False
        module = obj.get("module")
        registered = obj.get("registered_name")
        if cls == "__typespec__":
            if not self.allowed.module_ok(module):
                self.add(trail, what, f"its type spec comes from module '{module}', outside Keras and Larq")
            return trail, True
        if cls == "function":
            fn = obj.get("config")
            if module != "builtins" and (not self.allowed.module_ok(module)
                                         or (isinstance(fn, str) and fn not in self.allowed.names)):
                self.add(trail, f"function '{fn}' (module '{module}')",
                         "it is not a Keras, Larq or registered function")
            return trail, True  # "builtins": looked up by name among Keras's built-in functions
        if cls == "TFOpLambda":
            fn = obj.get("config", {}).get("function") if isinstance(obj.get("config"), dict) else None
            if fn not in _TF_OP_FUNCTIONS:
                self.add(trail, what, f"it calls TensorFlow function {fn!r}, not one of the allowed "
                         f"operators ({', '.join(sorted(_TF_OP_FUNCTIONS))})")
            return trail, True
        if cls not in self.allowed.names:
            self.add(trail, what, "its class is not a Keras, Larq or registered class"
                     + (f" (module '{module}')" if module else ""))
        elif not self.allowed.module_ok(module):
            self.add(trail, what, f"it names module '{module}', outside Keras and Larq, which loading would import")
        elif registered not in (None, cls) and registered not in self.allowed.names:
            self.add(trail, what, f"its registered name '{registered}' is not a Keras, Larq or registered class")
        if cls in _MODEL_CLASSES:
            return trail + (f"model {_label(obj)}",), True
        if cls in ("TimeDistributed", "Bidirectional"):
            return trail + (f"wrapper {_label(obj)}",), True
        return trail, True

    def check_function_fields(self, obj: dict, trail) -> None:
        for key in ("function_type", "output_shape_type", "func_type"):
            kind = obj.get(key)
            if kind in ("lambda", "function"):
                self.add(trail, f"field '{key}'" + (f" of {_label(obj)}" if "class_name" in obj else ""),
                         f"it stores a Python {kind}, which loading would rebuild and call")


def scan_config(config, allowed: Allowed) -> list:
    """Every object in a parsed model config that would run code.

    Example:
        >>> cfg = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        ...     {"class_name": "Lambda", "config": {"name": "evil", "function": "x"}}]}}
        >>> [str(f) for f in scan_config(cfg, Allowed(names=frozenset({"Sequential"})))]
        ["Lambda layer 'evil' in model 'm' (Sequential): a Lambda layer runs the Python function stored in the file"]

    Args:
        config: the JSON of a model config.
        allowed: the class and function names it may use.

    Returns:
        A list of :class:`Finding`, in the order met; empty when safe.
    """
    walker = _Walker(allowed)
    walker.walk(config)
    seen, unique = set(), []
    for f in walker.findings:  # a SavedModel describes nested layers again in their own nodes
        if (f.what, f.reason) not in seen:
            seen.add((f.what, f.reason))
            unique.append(f)
    return unique


# --------------------------------------------------------------------------
# The check


def _refusal(path: Path, findings, *, extra: str = "") -> UnsafeModelError:
    shown = "; ".join(str(f) for f in findings[:5])
    if len(findings) > 5:
        shown += f"; and {len(findings) - 5} more"
    return UnsafeModelError(
        f"refusing to load {path}: {shown}{extra}. Loading it would run code stored in the "
        f"file. If you trust {path} and its author, pass {TRUST_FLAG}"
    )


def check_config(config, path, *, custom_objects=None, notes=()) -> None:
    """Raise :class:`UnsafeModelError` when a parsed config of ``path`` would run code.

    ``notes`` (e.g. why a Lambda was not recognised as larq-zoo's) are added
    to the message when it raises.
    """
    findings = scan_config(config, allowed_objects(custom_objects))
    if findings:
        extra = "".join(f"; {n}" for n in list(notes)[:3])
        if len(notes) > 3:
            extra += f"; and {len(notes) - 3} more such notes"
        raise _refusal(Path(path), findings, extra=extra)


def check_model_file(path, *, custom_objects=None) -> str:
    """Check the model at ``path`` before it is loaded; return its format.

    Args:
        path: a ``.h5`` file, a ``.keras`` zip or a SavedModel folder.
        custom_objects: ``{name: class or function}`` the caller allows on
            top of tf-keras's and Larq's built-ins.

    Returns:
        ``"h5"`` or ``"keras"`` (a SavedModel folder always raises).

    Raises:
        UnsafeModelError: the file holds a ``Lambda`` layer, a serialized
            function or an unknown class, or is a SavedModel folder.
        ModelError: the path is not a readable Keras model.
    """
    import h5py

    path = Path(path)
    fmt = model_format(path)
    if fmt == "savedmodel":
        nodes = read_savedmodel_metadata(path)
        findings = scan_config(nodes, allowed_objects(custom_objects)) if nodes else []
        extra = (
            ("; and " if findings else "")
            + "it is a TensorFlow SavedModel folder, whose stored TensorFlow graphs run while it "
            "loads (resource initializers can read and write files) whatever its Keras layers are"
            + ("" if nodes else " (it has no readable Keras metadata, keras_metadata.pb)")
            + "; save the model as .h5 or .keras from a trusted environment instead"
        )
        raise _refusal(path, findings, extra=extra)
    if fmt == "keras":
        config = read_keras_zip_config(path)
    else:
        try:
            with h5py.File(path, "r") as fh:
                config = read_h5_config(fh, path)
        except OSError as exc:
            raise ModelError(f"cannot read {path} as an HDF5 file: {exc}") from exc
    check_config(config, path, custom_objects=custom_objects)
    return fmt
