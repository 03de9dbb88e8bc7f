"""Graph passes over the list of op handlers, before memory planning.

- :func:`binary_dense`: ``LceDequantize -> FULLY_CONNECTED`` whose weights
  are all exactly +-1 (what LCE makes of a larq ``QuantDense``) becomes one
  xnor-popcount dense call on the bitpacked input and bitpacked weights
  (32x fewer weight bytes; exact, since a dot product of +-1 vectors is an
  integer well inside float32's exact range). When a batch norm follows, LCE
  folds its scale into the weights and each row o is +-s_o: the call then
  multiplies the exact integer by s_o once, where TFLite rounds after each
  of the in_features additions of +-s_o, so float outputs differ by float
  rounding only (relative ~in_features * 2^-24 at worst).
- :func:`fuse_chains`: ``[CONV_2D | LceBconv2d with float output] ->
  [MAX_POOL_2D] -> MUL/ADD (constant per-channel or scalar, up to 4) ->
  LceQuantize`` becomes one row-sliced call whose float intermediate maps are
  never materialized (a scratch of a few rows instead).
- :func:`level_convolutions`: a float ``CONV_2D`` or ``FULLY_CONNECTED``
  whose input is provably an integer code 0..L (a ``ROUND`` of a value the
  graph bounds to [0, L + 0.5), NaN-free: DoReFa-Net's k-bit activations
  ``ROUND(MUL(RELU(MINIMUM(x, 1)), 2^k - 1))``, possibly scaled by a
  constant ``MUL`` and reshaped) and whose weights are +-s_o per output
  channel becomes :class:`ops.LevelConv`: bitplane XOR-popcounts with one
  multiply by s_o (times the scale) of the exact integer sum. Float outputs
  differ from TFLite's by float rounding only, as for binary dense.
- :func:`residual_adds`: ``LceBconv2d`` with float output whose only reader
  is an ``ADD`` with another activation tensor of the same shape (a
  residual block) becomes :class:`ops.BconvAdd`, one call whose transform
  adds the residual while the pixel is in cache. Same results bit for bit.
  Only for kernel sets whose ``ebnn_bconv2d_add`` is as fast a variant as
  their ``ebnn_bconv2d`` (the generator decides).
- :func:`drop_dead`: removes nodes whose outputs nobody reads.
- :func:`dilated_convolutions` (on the flatbuffer's ops, before handlers):
  ``SPACE_TO_BATCH_ND -> CONV_2D|DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND``,
  TensorFlow's lowering of a dilated convolution that LCE leaves in place
  for some dilated binary convolutions (SAME with pad_values=0), becomes the
  one dilated convolution it computes.

A pass only rewrites when every intermediate tensor is read by the next op
of the chain alone and is not a graph output.
"""

import dataclasses

import numpy as np

from edgebnn.codegen import ops as O


def _consumers(nodes):
    out = {}
    for n in nodes:
        for t in n.inputs:
            out.setdefault(t, []).append(n)
    return out


def _producers(nodes):
    return {t: n for n in nodes for t in n.outputs}


def binary_dense(nodes, graph_outputs):
    """Replace ``LceDequantize -> FULLY_CONNECTED(+-1 weights)`` by :class:`ops.BinaryDense`."""
    prod = _producers(nodes)
    out = []
    for n in nodes:
        if isinstance(n, O.FullyConnected):
            src = prod.get(n.op.inputs[0])
            scale = binary_row_scales(n.ctx.tensor(n.params.weights).data)
            if isinstance(src, O.LceDequantize) and scale is not None:
                out.append(O.BinaryDense(n, src, scale))
                continue
        out.append(n)
    return drop_dead(out, graph_outputs)


def binary_row_scales(weights):
    """Per output row s > 0 such that every weight of the row is +s or -s, else None.

    LCE folds a batch norm that follows a ``QuantDense`` into its +-1
    weights, so each row is +-s_o rather than +-1 (s_o = 1 without one).
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or w.size == 0:
        return None
    s = np.abs(w[:, :1])
    if not np.all(s > 0) or not np.all(np.abs(w) == s) or not np.all(np.isfinite(s)):
        return None
    return s[:, 0].astype(np.float32)


_UNBOUNDED = (-np.inf, np.inf, False)  # lo, hi, never NaN


def _scalar_const(node, var):
    """The other operand of a two-operand node when it is one finite float32 constant, else None."""
    a, b = node.op.inputs[:2]
    other = b if a == var else a if b == var else None
    if other is None or other == var:
        return None
    t = node.ctx.tensor(other)
    if not t.is_constant or t.dtype != "float32" or int(np.prod(t.shape or (1,))) != 1:
        return None
    v = np.float32(np.asarray(t.data).ravel()[0])
    return v if np.isfinite(v) else None


def _clamp_act(rng, act):
    lo, hi, nan_free = rng
    bounds = {O.Activation.RELU: (0.0, np.inf), O.Activation.RELU6: (0.0, 6.0),
              O.Activation.RELU_N1_TO_1: (-1.0, 1.0)}.get(act)
    if bounds is None:
        return rng
    return (min(max(lo, bounds[0]), bounds[1]), min(max(hi, bounds[0]), bounds[1]), nan_free)


def _value_range(tensor, prod, depth=8):
    """(lo, hi, never NaN) of a float tensor, from the ops that made it (float32 arithmetic).

    Follows MINIMUM/MAXIMUM with a scalar constant, RELU, RELU6,
    RELU_N1_TO_1 and MUL by a positive scalar constant; anything else is
    unbounded and may be NaN. The NaN rules are the runtime's (TFLite's):
    ``MINIMUM(x, c)`` is ``x < c ? x : c``, so a NaN x gives c when x is the
    first operand, and stays NaN when it is the second; the RELUs keep NaN.
    """
    node = prod.get(tensor)
    if node is None or depth == 0 or len(node.op.inputs) < 1:
        return _UNBOUNDED
    kind = node.op.type
    if kind in ("RELU", "RELU6", "RELU_N1_TO_1"):
        return _clamp_act(_value_range(node.op.inputs[0], prod, depth - 1), O.Activation[kind])
    if kind in ("MINIMUM", "MAXIMUM") and len(node.op.inputs) == 2:
        for pos, var in enumerate(node.op.inputs[:2]):
            c = _scalar_const(node, var)
            if c is None:
                continue
            lo, hi, nan_free = _value_range(var, prod, depth - 1)
            f = min if kind == "MINIMUM" else max
            return (f(lo, float(c)), f(hi, float(c)), nan_free or pos == 0)
        return _UNBOUNDED
    if kind == "MUL" and isinstance(node, O.Add) and len(node.op.inputs) == 2:
        for var in node.op.inputs[:2]:
            c = _scalar_const(node, var)
            if c is not None and c > 0:
                lo, hi, nan_free = _value_range(var, prod, depth - 1)
                with np.errstate(over="ignore", invalid="ignore"):
                    rng = (float(np.float32(lo) * c), float(np.float32(hi) * c), nan_free)
                return _clamp_act(rng, node.params.activation)
        return _UNBOUNDED
    return _UNBOUNDED


def code_levels(tensor, prod):
    """L when ``tensor`` is a ROUND output that can only hold the integers 0..L (1 <= L <= 255), else None."""
    node = prod.get(tensor)
    if node is None or node.op.type != "ROUND":
        return None
    lo, hi, nan_free = _value_range(node.op.inputs[0], prod)
    if not nan_free or not lo > -0.5 or not np.isfinite(hi):
        return None
    levels = int(np.floor(hi + 0.5))
    return levels if 1 <= levels <= O.LevelConv.MAX_LEVELS else None


def _level_source(node, prod):
    """(codes tensor, levels, input scale) feeding a float CONV_2D/FULLY_CONNECTED, or None.

    The input is the ROUND output itself, or a positive scalar MUL of it
    (the scale is folded into the weights), and for FULLY_CONNECTED any
    RESHAPEs in between (they move no data).
    """
    t = node.op.inputs[0]
    if isinstance(node, O.FullyConnected):
        while isinstance(prod.get(t), O.Reshape):
            t = prod[t].op.inputs[0]
    src = prod.get(t)
    if src is not None and src.op.type == "MUL" and isinstance(src, O.Add) and \
            src.params.activation == O.Activation.NONE:
        for var in src.op.inputs[:2]:
            c = _scalar_const(src, var)
            levels = code_levels(var, prod) if c is not None and c > 0 else None
            if levels is not None:
                return var, levels, c
    levels = code_levels(t, prod)
    return None if levels is None else (t, levels, np.float32(1.0))


def level_convolutions(nodes, graph_outputs):
    """Replace float convolutions of integer codes with +-s weights by :class:`ops.LevelConv`."""
    prod = _producers(nodes)
    out = []
    for n in nodes:
        if type(n) in (O.Conv2D, O.FullyConnected) and n.op.type in ("CONV_2D", "FULLY_CONNECTED"):
            w = np.asarray(n.ctx.tensor(n.op.inputs[1]).data, dtype=np.float32)
            scales = binary_row_scales(w.reshape(w.shape[0], -1)) if w.ndim >= 2 else None
            found = _level_source(n, prod) if scales is not None else None
            if found is not None:
                codes, levels, in_scale = found
                out.append(O.LevelConv(n, codes, levels, scales, in_scale))
                continue
        out.append(n)
    return drop_dead(out, graph_outputs)


def drop_dead(nodes, graph_outputs):
    """Remove nodes none of whose outputs is read or is a graph output."""
    nodes = list(nodes)
    while True:
        cons = _consumers(nodes)
        keep = [n for n in nodes if any(t in cons or t in graph_outputs for t in n.outputs)]
        if len(keep) == len(nodes):
            return keep
        nodes = keep


def residual_adds(nodes, graph_outputs):
    """Replace ``LceBconv2d (float) -> ADD(y, r)`` (r an activation of y's shape) by :class:`ops.BconvAdd`.

    The merged node takes the ADD's place in the call list, where the
    residual r is computed, whatever the order of the two ops' producers.
    """
    cons = _consumers(nodes)
    merged, absorbed = {}, set()
    for n in nodes:
        if type(n) is not O.LceBconv2d or n.params.bitpacked_output:
            continue
        t = n.outputs[0]
        add = _only_consumer(cons, t, graph_outputs)
        if type(add) is not O.Add or add.op.type != "ADD" or id(add) in merged:
            continue
        a, b = add.op.inputs[:2]
        other = b if a == t else a
        if other == t or n.ctx.tensor(t).dtype != "float32" or n.ctx.tensor(other).is_constant:
            continue
        if add.params.b_size != add.params.size or n.ctx.tensor(other).shape != n.ctx.tensor(t).shape:
            continue
        merged[id(add)] = O.BconvAdd(n, add, other)
        absorbed.add(id(n))
    return [merged.get(id(n), n) for n in nodes if id(n) not in absorbed]


def _only_consumer(cons, tensor, graph_outputs):
    users = cons.get(tensor, [])
    if len(users) != 1 or tensor in graph_outputs:
        return None
    return users[0]


def _stage_const(node, chain_tensor, channels):
    """The constant operand of a MUL/ADD stage, or None if it cannot be fused."""
    if not isinstance(node, O.Add) or node.op.type not in ("MUL", "ADD"):
        return None
    a, b = node.op.inputs[:2]
    other = b if a == chain_tensor else a if b == chain_tensor else None
    if other is None or other == chain_tensor:
        return None
    t = node.ctx.tensor(other)
    if not t.is_constant or t.dtype != "float32":
        return None
    n = int(np.prod(t.shape)) if t.shape else 1
    shape = tuple(d for d in t.shape if d != 1)
    if n == 1 or (n == channels and len(shape) == 1):
        return other
    return None


def fuse_chains(nodes, graph_outputs):
    """Replace producer -> [pool] -> MUL/ADD* -> LceQuantize chains by :class:`ops.FusedChain`."""
    cons = _consumers(nodes)
    fused = {}  # id(first node) -> FusedChain
    absorbed = set()
    for n in nodes:
        is_conv = type(n) is O.Conv2D
        is_bconv = isinstance(n, O.LceBconv2d) and not n.params.bitpacked_output
        if not (is_conv or is_bconv):
            continue
        channels = n.params.out_c
        t = n.outputs[0]
        nxt = _only_consumer(cons, t, graph_outputs)
        chain = [n]
        pool = None
        if type(nxt) is O.MaxPool2D:
            pool = nxt
            chain.append(pool)
            t = pool.outputs[0]
            nxt = _only_consumer(cons, t, graph_outputs)
        stages = []
        while nxt is not None and len(stages) < O.FusedChain.MAX_STAGES:
            const = _stage_const(nxt, t, channels)
            if const is None:
                break
            stages.append((nxt, const))
            chain.append(nxt)
            t = nxt.outputs[0]
            nxt = _only_consumer(cons, t, graph_outputs)
        if not isinstance(nxt, O.LceQuantize):
            continue
        chain.append(nxt)
        fused[id(n)] = O.FusedChain(n, pool, stages, nxt)
        absorbed.update(id(k) for k in chain[1:])
    out = []
    for n in nodes:
        if id(n) in fused:
            out.append(fused[id(n)])
        elif id(n) not in absorbed:
            out.append(n)
    return out


def fuse_int8_chains(nodes, graph_outputs):
    """Replace int8 producer -> MAX_POOL_2D -> [1x1 DEPTHWISE] -> LceQuantize chains
    by :class:`ops_int8.Int8FusedChain` (VALID or SAME producers, VALID pool;
    see ebnn_int8_fused.c)."""
    from edgebnn.codegen import ops_int8 as I

    cons = _consumers(nodes)
    fused, absorbed = {}, set()
    for n in nodes:
        if not I.Int8FusedChain.producer_ok(n):
            continue
        pool = _only_consumer(cons, n.outputs[0], graph_outputs)
        if pool is None or not I.Int8FusedChain.pool_ok(pool):
            continue
        nxt = _only_consumer(cons, pool.outputs[0], graph_outputs)
        affine = None
        if nxt is not None and I.Int8FusedChain.affine_ok(nxt):
            affine = nxt
            nxt = _only_consumer(cons, affine.outputs[0], graph_outputs)
        if not isinstance(nxt, I.LceQuantizeInt8):
            continue
        chain = [pool] + ([affine] if affine else []) + [nxt]
        fused[id(n)] = I.Int8FusedChain(n, pool, affine, nxt)
        absorbed.update(id(k) for k in chain)
    return [fused.get(id(n), n) for n in nodes if id(n) not in absorbed]


def _const(graph, index):
    t = graph.tensor(index) if index >= 0 else None
    return None if t is None or t.data is None else np.asarray(t.data).astype(np.int64)


def dilated_convolutions(graph):
    """Yield ``(op, covered_ops)``: the graph's ops with S2B -> conv -> B2S triples merged.

    The merged op is a copy of the convolution with ``dilation_*factor`` set
    to the block shape, ``padding`` SAME or VALID as the paddings say, and the
    output of BATCH_TO_SPACE_ND. Why it is the same computation: space-to-batch
    splits the zero-padded input into block_h x block_w phases, a VALID
    convolution of each phase reads taps block apart, and batch-to-space
    interleaves the phases back, so output (r, c) is the dilated VALID
    convolution of the padded input at (r, c), cropped at the end. With
    paddings before = SAME's pad-before and no crop before, that is the SAME
    dilated convolution; with no padding before, the VALID one.
    """
    users = {}
    for op in graph.ops:
        for t in op.inputs:
            if t >= 0:
                users.setdefault(t, []).append(op)
    skip = set()
    merged = {}
    producer = {t: op for op in graph.ops for t in op.outputs}
    for conv in graph.ops:
        if conv.type not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        # malformed triples are left alone: the handlers report them op by op
        if len(conv.inputs) < 2 or min(conv.inputs[:2]) < 0 or len(conv.outputs) != 1:
            continue
        s2b = producer.get(conv.inputs[0])
        if (s2b is None or s2b.type != "SPACE_TO_BATCH_ND" or len(s2b.inputs) < 3 or min(s2b.inputs[:3]) < 0
                or len(s2b.outputs) != 1):
            continue
        b2s = users.get(conv.outputs[0], [])
        if len(b2s) != 1 or b2s[0].type != "BATCH_TO_SPACE_ND" or conv.outputs[0] in graph.outputs:
            continue
        b2s = b2s[0]
        if len(b2s.inputs) < 3 or min(b2s.inputs[:3]) < 0 or len(b2s.outputs) != 1 or b2s.inputs[0] != conv.outputs[0]:
            continue
        if len(graph.tensor(conv.inputs[1]).shape) != 4:
            continue
        block, pads = _const(graph, s2b.inputs[1]), _const(graph, s2b.inputs[2])
        block2, crops = _const(graph, b2s.inputs[1]), _const(graph, b2s.inputs[2])
        x, w, y = graph.tensor(s2b.inputs[0]), graph.tensor(conv.inputs[1]), graph.tensor(b2s.outputs[0])
        opts = conv.options
        if (block is None or pads is None or block2 is None or crops is None or block.shape != (2,)
                or not np.array_equal(block, block2) or pads.shape != (2, 2) or crops.shape != (2, 2)
                or len(x.shape) != 4 or len(y.shape) != 4 or w.data is None
                or opts.get("padding") != "VALID" or opts.get("stride_h", 1) != 1
                or opts.get("stride_w", 1) != 1 or opts.get("dilation_hfactor", 1) != 1
                or opts.get("dilation_wfactor", 1) != 1 or (crops[:, 0] != 0).any() or (block < 1).any()):
            continue
        padding = None
        eff = [(int(w.shape[1 + i]) - 1) * int(block[i]) + 1 for i in range(2)]
        in_hw = [int(x.shape[1]), int(x.shape[2])]
        out_hw = [int(y.shape[1]), int(y.shape[2])]
        if all(pads[i, 0] == (eff[i] - 1) // 2 and out_hw[i] == in_hw[i] for i in range(2)):
            padding = "SAME"
        elif all(pads[i, 0] == 0 and out_hw[i] == in_hw[i] - eff[i] + 1 for i in range(2)):
            padding = "VALID"
        if padding is None:
            continue
        inputs = (s2b.inputs[0],) + tuple(conv.inputs[1:])
        new = dataclasses.replace(conv, inputs=inputs, outputs=b2s.outputs, options={
            **opts, "padding": padding, "dilation_hfactor": int(block[0]), "dilation_wfactor": int(block[1])})
        merged[conv.index] = (new, (s2b, conv, b2s))
        skip.add(b2s.index)
    # a SPACE_TO_BATCH_ND goes when every reader was merged into a dilated convolution
    for op in graph.ops:
        if op.type == "SPACE_TO_BATCH_ND" and len(op.outputs) == 1 and op.outputs[0] not in graph.outputs:
            readers = users.get(op.outputs[0], [])
            if readers and all(r.index in merged for r in readers):
                skip.add(op.index)
    for op in graph.ops:
        if op.index in skip:
            continue
        if op.index in merged:
            yield merged[op.index]
        else:
            yield op, (op,)
