"""The one place where text from strangers is rendered into generated files.

Tensor and op names come from a model file, paths from the command line or
a dataset folder, flags and descriptions from a target ``.toml``. None of it
may change what a compiler, ``make`` or a linker reads. Every such string
reaches a generated ``.c``, ``.h``, ``Makefile`` or linker script only
through one of these renderers; nothing else in edgebnn writes external text
into those files.

Comments (C, linker scripts, Makefiles) keep printable ASCII and write every
other byte as ``\\xNN``, so the rendering is lossless and plain names stay
readable. UTF-8 is escaped byte by byte; a lone surrogate from
``surrogateescape`` decoding (an undecodable byte of a path) is written as
the byte it stands for. What stays out of a C comment, and why:

- CR, LF and every control byte: no line can end early, so no
  backslash-newline splice and no new line for the rest of the text;
- the backslash itself (``\\x5c``): no splice even if a line is joined;
- ``?`` (``\\x3f``): no trigraph (``??/`` is a backslash under ``-std=c99``);
- a ``/`` after ``*`` and a ``*`` after ``/``: no comment terminator and
  no nested ``/*`` (which ``-Wall -Werror`` rejects).

Example:
    >>> c_comment("conv/*x*/ ??/\\nint pwned;")
    'conv/\\\\x2ax*\\\\x2f \\\\x3f\\\\x3f/\\\\x0aint pwned;'
    >>> print(c_comment("caf\\u00e9"))
    caf\\xc3\\xa9
    >>> print(make_comment("a\\n$(shell touch PWNED)"))
    a\\x0a\\x24(shell touch PWNED)
    >>> print(c_string('say "hi"\\n'))
    "say \\"hi\\"\\012"
    >>> print(make_word("it's $HOME", what="toolchain.cc"))
    'it'"'"'s $$HOME'
"""

from __future__ import annotations

import os
import re
import shlex

from edgebnn.errors import UnsafeInputError

_PRINTABLE = range(0x20, 0x7F)
#: Bytes a comment writes as ``\xNN`` even though they are printable.
_C_COMMENT_ESCAPED = frozenset(b"\\?")
_MAKE_COMMENT_ESCAPED = frozenset(b"\\$")
_MAKE_FORBIDDEN = re.compile(r"[\x00\n\r]")
_INCLUDE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.h")


def text_bytes(text) -> bytes:
    """The bytes a string stands for: UTF-8, with lone surrogates restored.

    A path decoded by the OS with ``surrogateescape`` holds U+DC80..U+DCFF
    for bytes that were not UTF-8: those become the bytes again. Any other
    lone surrogate (which UTF-8 cannot encode) is written as its three-byte
    ``surrogatepass`` form, so no input raises. Bytes are returned as they
    are; paths and other objects go through :func:`os.fspath`/:func:`str`.

    Example:
        >>> text_bytes("a\\udcff\\u00e9")
        b'a\\xff\\xc3\\xa9'
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
        if isinstance(text, bytes):
            return text
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        out = bytearray()
        for ch in text:
            if 0xDC80 <= ord(ch) <= 0xDCFF:
                out.append(ord(ch) - 0xDC00)
            else:
                out += ch.encode("utf-8", "surrogatepass")
        return bytes(out)


def _escape_bytes(data: bytes, escaped: frozenset, *, comment_pairs: bool) -> str:
    out = []
    last = ""
    for b in data:
        ch = chr(b)
        unsafe = b not in _PRINTABLE or b in escaped
        if comment_pairs and ((ch == "/" and last == "*") or (ch == "*" and last == "/")):
            unsafe = True
        piece = f"\\x{b:02x}" if unsafe else ch
        out.append(piece)
        last = piece[-1]
    return "".join(out)


def c_comment(text) -> str:
    """Text that stays inside a C ``/* ... */`` comment, whatever it holds.

    The result is printable ASCII with no ``*/``, no ``/*``, no ``?`` and no
    backslash other than the one opening a ``\\xNN`` escape; every byte
    outside printable ASCII, and those characters where they would matter,
    become ``\\xNN``. Plain names come back unchanged.

    Example:
        >>> c_comment("conv2d/kernel:0")
        'conv2d/kernel:0'
        >>> print(c_comment("a */ b\\r\\n"))
        a *\\x2f b\\x0d\\x0a

    Args:
        text: a str (lone surrogates allowed), bytes, or a path.

    Returns:
        the text to put between ``/*`` and ``*/``.
    """
    return _escape_bytes(text_bytes(text), _C_COMMENT_ESCAPED, comment_pairs=True)


def ld_comment(text) -> str:
    """Text that stays inside a ``/* ... */`` comment of a GNU ld script.

    ld scripts have C comments without line splices or trigraphs, so the
    rendering of :func:`c_comment` is safe there too; it is used as is.

    Example:
        >>> ld_comment("M4 */ } SECTIONS {")
        'M4 *\\\\x2f } SECTIONS {'
    """
    return c_comment(text)


def make_comment(text) -> str:
    """Text for the rest of a ``#`` comment line of a Makefile.

    Control bytes (a newline would end the comment and start a rule or a
    ``$(shell ...)``), the backslash (a trailing one continues the comment
    onto the next line), ``$`` and every non-ASCII byte become ``\\xNN``.

    Example:
        >>> make_comment("edgebnn export m.tflite -o out")
        'edgebnn export m.tflite -o out'
        >>> print(make_comment("x\\\\\\n`id`"))
        x\\x5c\\x0a`id`
    """
    return _escape_bytes(text_bytes(text), _MAKE_COMMENT_ESCAPED, comment_pairs=False)


def c_string(text) -> str:
    """A C string literal holding the bytes of ``text``.

    Printable ASCII stays; ``\\``, ``"`` and ``?`` (trigraphs) are escaped
    with a backslash; every other byte is a three-digit octal escape, which
    cannot swallow a following digit (C reads at most three octal digits,
    while a hex escape would go on).

    Example:
        >>> print(c_string("a\\\\b?\\x001"))
        "a\\\\b\\?\\0001"
    """
    out = []
    for b in text_bytes(text):
        ch = chr(b)
        if ch in '\\"?':
            out.append("\\" + ch)
        elif b in _PRINTABLE:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def make_word(text, *, what: str) -> str:
    """One shell word in a Makefile variable or recipe, exactly as given.

    The word is quoted for the shell (:func:`shlex.quote`), then for make:
    ``$`` becomes ``$$`` and ``#`` (which would start a comment, even inside
    shell quotes) becomes ``\\#``, doubling any backslashes just before it as
    make's rules ask. A Makefile line cannot hold a newline, a carriage
    return or NUL, so those are refused rather than guessed at.

    Example:
        >>> make_word("-mcpu=cortex-m4", what="toolchain.cflags")
        '-mcpu=cortex-m4'
        >>> make_word("$(shell id)#", what="toolchain.cc")
        "'$$(shell id)\\\\#'"

    Args:
        text: the word.
        what: what the word is (a flag or target-file field), for the error.

    Raises:
        UnsafeInputError: the word holds a newline, carriage return or NUL,
            or a lone surrogate (bytes that are not text).
    """
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    bad = _MAKE_FORBIDDEN.search(text)
    if bad or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        found = repr(bad.group()) if bad else "bytes that are not UTF-8"
        raise UnsafeInputError(
            f"{what} is {text!r}: a generated Makefile can hold it only without newlines, "
            f"carriage returns and NUL characters, but it contains {found}"
        )
    quoted = shlex.quote(text).replace("$", "$$")
    return re.sub(r"(\\*)#", lambda m: m.group(1) * 2 + "\\#", quoted)


def c_include(path: str, *, what: str = "header") -> str:
    """The quoted operand of ``#include "..."`` for a generated header.

    The preprocessor gives no meaning to escapes in an include name, so a
    header name is checked, not escaped: letters, digits, ``_``, ``.``,
    ``-`` and ``/`` between parts, ending in ``.h``, no ``..``.

    Example:
        >>> c_include("mnist.h")
        '"mnist.h"'

    Raises:
        UnsafeInputError: any other name.
    """
    if not isinstance(path, str) or not _INCLUDE_RE.fullmatch(path):
        raise UnsafeInputError(
            f"{what} {path!r} cannot be included safely: expected letters, digits, '_', '.', '-' "
            "and '/' between parts, ending in '.h'"
        )
    return f'"{path}"'


def c_uint32(value, *, what: str) -> str:
    """A C ``uint32_t`` constant (``0x...u``) for a number from a target file.

    Only a plain integer in 0..2**32-1 is rendered: a bool, a float or a
    string (which could carry C text) is refused, so nothing but hex digits
    reaches the source.

    Example:
        >>> c_uint32(0x40004000, what="console.uart.base")
        '0x40004000u'

    Raises:
        UnsafeInputError: the value is not such an integer.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise UnsafeInputError(f"{what} must be an integer in 0..0xFFFFFFFF, found {value!r}")
    return f"0x{value:08X}u"


_CMAKE_FORBIDDEN = re.compile(r"[\x00\n\r]")
_CMAKE_COMMENT_ESCAPED = frozenset(b"\\")


def cmake_comment(text) -> str:
    """Text for the rest of a ``# `` line comment of a ``CMakeLists.txt``.

    Control bytes (a newline would end the comment and start a command),
    the backslash and every non-ASCII byte become ``\\xNN``. The caller
    writes ``# `` first, so a ``[[`` in the text cannot open a bracket comment.

    Example:
        >>> print(cmake_comment("m.tflite\\nexecute_process(COMMAND id)"))
        m.tflite\\x0aexecute_process(COMMAND id)
    """
    return _escape_bytes(text_bytes(text), _CMAKE_COMMENT_ESCAPED, comment_pairs=False)


def cmake_string(text, *, what: str) -> str:
    """A CMake quoted argument holding ``text`` exactly.

    ``\\`` and ``"`` are escaped; ``$`` is escaped so no ``${VAR}``,
    ``$ENV{...}`` or ``$CACHE{...}`` is expanded; ``;`` is escaped so the
    value stays one list element. A newline, carriage return or NUL is
    refused: a flag or a name never needs one.

    Example:
        >>> print(cmake_string('-DX="${HOME};1"', what="toolchain.cflags"))
        "-DX=\\"\\${HOME}\\;1\\""

    Raises:
        UnsafeInputError: the text holds a newline, carriage return or NUL,
            or a lone surrogate.
    """
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    bad = _CMAKE_FORBIDDEN.search(text)
    if bad or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        found = repr(bad.group()) if bad else "bytes that are not UTF-8"
        raise UnsafeInputError(
            f"{what} is {text!r}: a generated CMake file can hold it only without newlines, "
            f"carriage returns and NUL characters, but it contains {found}"
        )
    return '"' + re.sub(r'([\\"$;])', r"\\\1", text) + '"'
