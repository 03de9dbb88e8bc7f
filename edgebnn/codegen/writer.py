"""A small writer for C source: indentation, comments, constant arrays.

Generated C is built line by line through :class:`CWriter`; nothing is
assembled by ``+`` concatenation, and every number is formatted the same way
on every run so the output is byte-for-byte deterministic. Comment text goes
through :func:`edgebnn.escape.c_comment`, so a tensor name from a model
can never end a comment or splice a line.

Example:
    >>> w = CWriter()
    >>> w.comment("op 0: CONV_2D")
    >>> with w.block("int f(void)"):
    ...     w.line("return 0;")
    >>> print(w.text(), end="")
    /* op 0: CONV_2D */
    int f(void) {
        return 0;
    }
"""

import contextlib

import numpy as np

from edgebnn.escape import c_comment

INDENT = "    "


def c_float(value) -> str:
    """A float32 as a C literal that reads back bit-exactly.

    numpy prints the shortest decimal that rounds back to the same float32
    (``str(np.float32(0.1)) == "0.1"``), which ``strtof`` and C compilers
    read back exactly; infinities and NaNs, which C99 has no literal for,
    become ``INFINITY``/``NAN`` from ``<math.h>``.
    """
    v = np.float32(value)
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = str(v)
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_int32(value) -> str:
    """An int32 as a C literal (INT32_MIN written so it is not an overflow)."""
    v = int(value)
    if v == -(2**31):
        return "(-2147483647 - 1)"
    return str(v)


def c_value(value, what="value") -> str:
    """One field of a params initializer as C.

    Text is taken as it is (an identifier, a macro, a nested initializer); a
    value with a ``c()`` method (the ops' enums and fixed-size arrays)
    renders itself; bools, ints and floats become literals. ``what`` names
    the field in the TypeError any other value raises.
    """
    if hasattr(value, "c"):
        return value.c()
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return c_int32(value)
    if isinstance(value, float):
        return c_float(value)
    raise TypeError(f"{what}: {value!r}")


def c_initializer(fields) -> str:
    """``{.name = value, ...}`` of ``(name, value)`` pairs: a struct nested in a params initializer."""
    return "{" + ", ".join(f".{k} = {c_value(v, f'field {k}')}" for k, v in fields) + "}"


#: Bytes written as themselves inside a C string literal: printable ASCII
#: except the quote, the backslash and ``?`` (``??=`` is a trigraph in C99).
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\"), ord("?")}
_BYTE_TEXT = tuple(chr(b) if b in _PLAIN else f"\\{b:03o}" for b in range(256))


def c_bytes(data: bytes) -> str:
    r"""The body of a C string literal holding exactly ``data``.

    Example:
        >>> print(c_bytes(b'A\x00?7'))
        A\000\0777
    """
    return "".join(_BYTE_TEXT[b] for b in data)


class CWriter:
    """Accumulates lines of C with indentation."""

    def __init__(self):
        self._lines = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self._lines.append(f"{INDENT * self._depth}{text}" if text else "")

    def lines(self, texts) -> None:
        for t in texts:
            self.line(t)

    def blank(self) -> None:
        if self._lines and self._lines[-1] != "":
            self._lines.append("")

    def comment(self, text) -> None:
        """One ``/* text */`` line; ``text`` may hold anything (it is escaped)."""
        self.line(f"/* {c_comment(text)} */")

    def block_comment(self, texts) -> None:
        """A ``/* ... */`` block, one escaped line per item of ``texts``."""
        self.line("/*")
        for t in texts:
            self.line(f" * {c_comment(t)}".rstrip())
        self.line(" */")

    @contextlib.contextmanager
    def block(self, head: str, tail: str = "}"):
        self.line(f"{head} {{")
        self._depth += 1
        yield self
        self._depth -= 1
        self.line(tail)

    @contextlib.contextmanager
    def indent(self):
        self._depth += 1
        yield self
        self._depth -= 1

    def array(self, decl: str, values, fmt, per_line: int = 8) -> None:
        """Write ``decl = { v0, v1, ... };`` with ``per_line`` values a line."""
        values = list(values)
        if not values:
            raise ValueError(f"empty C array {decl!r}: C99 forbids zero-length arrays")
        self.line(f"{decl} = {{")
        with self.indent():
            for i in range(0, len(values), per_line):
                self.line(", ".join(fmt(v) for v in values[i : i + per_line]) + ",")
        self.line("};")

    def byte_array(self, ctype: str, ident: str, values, per_line: int = 64) -> str:
        """Write ``values`` as the little-endian byte image of a ``ctype`` array.

        The bytes go in a string literal (printable ASCII as itself, every
        other byte as a three-digit octal escape, which can never absorb the
        next character) that initializes the first member of a union whose
        second member is the ``ctype`` array, so the array is aligned for its
        type and read through the union (type punning C99 TC3 allows). A
        compiler parses one string token per line instead of one number
        token per value: seconds, not minutes, for 50 MB of weights. The
        literal keeps its terminating NUL (one byte more than the array), so
        no compiler warns about an unterminated string. A literal may be
        longer than the 4095 characters C99 requires every compiler to
        accept (``-pedantic`` says so; gcc, clang and armclang have no
        limit): build with ``-Wno-overlength-strings`` when ``-pedantic``.

        Returns the C expression of the array (``ident.v``).
        """
        flat = np.asarray(values)
        dtype = {"float": "<f4", "int32_t": "<i4", "int8_t": "i1"}[ctype]
        data = np.ascontiguousarray(flat, dtype=dtype).tobytes()
        if not data:
            raise ValueError(f"empty C array {ident!r}: C99 forbids zero-length arrays")
        self.line(f"static const union {{ unsigned char b[{len(data) + 1}]; {ctype} v[{flat.size}]; }} {ident} = {{")
        with self.indent():
            for i in range(0, len(data), per_line):
                self.line(f'"{c_bytes(data[i : i + per_line])}"')
        self.line("};")
        return f"{ident}.v"

    def text(self) -> str:
        return "\n".join(self._lines).rstrip("\n") + "\n"
