"""Static memory planning: one arena, offsets from tensor lifetimes.

Every activation tensor lives from the op that writes it to the last op that
reads it (op indices of the scheduled call list, inclusive). Tensors whose
lifetimes overlap must not share bytes; the others may. Buffers are placed
greedily, each at the lowest aligned offset that does not collide with an
already placed buffer alive at the same time, in three orders (largest
first: the "greedy by size" strategy of TFLite Micro's planner; largest
lifetime x size first; by first use); the smallest arena is kept. The plan
reports the lower bound beside its size (:func:`lower_bound`). An input and the output
of the same op are both alive at that op, so no kernel ever runs in place.

Example:
    >>> plan = plan_arena([Buffer("a", 400, 0, 1), Buffer("b", 100, 1, 2),
    ...                    Buffer("c", 400, 2, 3)])
    >>> plan.offsets["a"], plan.offsets["b"], plan.offsets["c"], plan.size
    (0, 400, 0, 512)
"""

from dataclasses import dataclass, field

from edgebnn.errors import UnsupportedOpError

ALIGN = 16
#: Largest arena the generated C may declare (offsets are int literals).
MAX_ARENA_BYTES = 2**31 - 1


def align_up(n: int, align: int = ALIGN) -> int:
    return (n + align - 1) // align * align


@dataclass(frozen=True)
class Buffer:
    """A block of arena memory: ``size`` bytes alive over ops ``[first, last]``."""

    key: object
    size: int
    first: int
    last: int

    def overlaps(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class ArenaPlan:
    """Offsets of the buffers, the arena size, and the lower bound on any arena.

    ``bound`` is :func:`lower_bound` of the same buffers: no placement of
    them fits in fewer bytes, so ``size / bound`` says how far the plan is
    from the best possible one.
    """

    offsets: dict = field(default_factory=dict)
    size: int = 0
    bound: int = 0

    def to_dict(self):
        return {"size": self.size, "bound": self.bound,
                "offsets": {str(k): v for k, v in self.offsets.items()}}


def lower_bound(buffers, align: int = ALIGN) -> int:
    """The largest sum of (aligned) sizes of buffers alive at one op.

    Every plan needs at least this many bytes, since the buffers alive at
    that op must all be disjoint.

    Example:
        >>> lower_bound([Buffer("a", 400, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 400, 2, 3)])
        512
    """
    bufs = list(buffers)
    events = sorted({b.first for b in bufs})
    return max((sum(align_up(max(b.size, 1), align) for b in bufs if b.first <= pos <= b.last)
                for pos in events), default=0)


#: Orders tried by :func:`plan_arena`; the smallest arena wins (ties: the first).
_ORDERS = (
    ("greedy by size", lambda b: (-b.size, b.first, str(b.key))),
    ("greedy by lifetime x size", lambda b: (-(b.last - b.first + 1) * b.size, b.first, str(b.key))),
    ("first use, then size", lambda b: (b.first, -b.size, str(b.key))),
)


def plan_arena(buffers, align: int = ALIGN) -> ArenaPlan:
    """Assign each buffer an offset so that buffers alive together never overlap.

    Args:
        buffers: :class:`Buffer` objects (``size`` in bytes).
        align: every offset is a multiple of this (16: room for SIMD loads).

    Returns:
        an :class:`ArenaPlan` with the offset of every buffer and the arena
        size (a multiple of ``align``; 0 for no buffers).
    """
    buffers = list(buffers)
    best = None
    for _, key in _ORDERS:
        offsets, total = _place(sorted(buffers, key=key), align)
        if best is None or total < best[1]:
            best = (offsets, total)
    offsets, total = best
    if total > MAX_ARENA_BYTES:
        raise UnsupportedOpError(f"the activations need an arena of {total} bytes, above the limit of "
                                 f"{MAX_ARENA_BYTES} bytes (C's int32 offsets)")
    return ArenaPlan(offsets=offsets, size=total, bound=lower_bound(buffers, align))


def _place(order, align):
    """First fit of the buffers in ``order``: (offsets, arena size)."""
    placed = []  # (offset, end, buffer)
    offsets = {}
    for buf in order:
        size = align_up(max(buf.size, 1), align)
        busy = sorted((o, e) for o, e, b in placed if b.overlaps(buf))
        offset = 0
        for start, end in busy:
            if offset + size <= start:
                break
            offset = max(offset, align_up(end, align))
        placed.append((offset, offset + size, buf))
        offsets[buf.key] = offset
    return offsets, align_up(max((e for _, e, _ in placed), default=0), align)


def check_plan(buffers, plan: ArenaPlan) -> None:
    """Raise AssertionError if two buffers alive together overlap in memory."""
    bufs = list(buffers)
    for i, a in enumerate(bufs):
        oa = plan.offsets[a.key]
        assert oa % ALIGN == 0 and oa + a.size <= plan.size, (a, oa, plan.size)
        for b in bufs[i + 1 :]:
            if a.overlaps(b):
                ob = plan.offsets[b.key]
                assert oa + a.size <= ob or ob + b.size <= oa, (a, b, oa, ob)
