"""``edgebnn bench``: latency, size and memory of a converted model."""

from pathlib import Path

import click

from edgebnn.bench.engines import engine_names
from edgebnn.bench.runner import DEFAULT_RUNS, DEFAULT_WARMUP, MAX_RUNS, MAX_WARMUP
from edgebnn.cli._common import echo_json, handle_errors, render_table, status


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _mib(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def _table(result) -> str:
    rows = []
    for m in result.models:
        lat = m.latency_us
        rows.append([
            m.role if len(result.models) > 1 else "model",
            m.model,
            m.engine + (" (emulated)" if m.emulated else ""),
            lat.runs,
            _fmt(lat.min),
            _fmt(lat.median),
            _fmt(lat.p90),
            _fmt(lat.max),
            _fmt(m.images_per_s, ".0f"),
            f"{m.model_bytes / 1024:.1f}",
            _mib(m.peak_rss_bytes),
            "-" if m.arena_bytes is None else f"{m.arena_bytes / 1024:.1f}",
        ])
    headers = ["", "model", "engine", "runs", "min us", "median us", "p90 us", "max us",
               "img/s", "size KiB", "peak RSS MiB", "arena KiB"]
    lines = [render_table(headers, rows)]
    if result.ratio is not None:
        lines.append(f"\nratio MODEL/OTHER ({result.ratio_basis} latency): {result.ratio:.3f}"
                     f"  (alternated in {result.alternation['chunks']} chunks)")
    lines.append("")
    for m in result.models:
        lines.append(f"{m.engine}: timed = {m.timed}")
        info = m.engine_info
        extras = []
        if "xnnpack" in info:
            extras.append(f"XNNPACK {info['xnnpack']}")
        if info.get("call_overhead_us") is not None:
            extras.append(f"predict() call overhead {info['call_overhead_us']:.1f} us (one-op model)")
        if info.get("runtime_version"):
            extras.append(f"{info.get('runtime', m.engine)} {info['runtime_version']}")
        if extras:
            lines.append("  " + "; ".join(extras))
        lines.append(f"  peak RSS: {m.rss_scope}")
    h = result.host
    lines.append(
        f"\nhost: {h['cpu']} ({h['arch']}, {h['cores']} cores, {h['cores_usable']} usable), "
        f"{h['os']}, load {h['load_average']}; threads {result.threads}, warmup {result.warmup}"
    )
    if h.get("simd"):
        lines.append(f"SIMD: {' '.join(h['simd'])}")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _plot_path(ctx, param, value):
    """Check --plot's format before the benchmark runs, not after."""
    if value is None:
        return None
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise click.BadParameter("drawing needs matplotlib: pip install matplotlib") from exc
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    ext = Path(value).suffix.lower().lstrip(".")
    if ext not in formats:
        found = f"'.{ext}'" if ext else "no extension"
        raise click.BadParameter(f"{value!r} has {found}; expected a file ending in one of "
                                 + ", ".join(f".{f}" for f in formats))
    return value


@click.command("bench")
@click.argument("model", required=False)
@click.option("--engine", type=click.Choice(engine_names()), default=None,
              help="Inference engine; chosen automatically when omitted (the choice is printed).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interpreter threads.")
@click.option("--warmup", type=click.IntRange(min=0, max=MAX_WARMUP), default=DEFAULT_WARMUP,
              show_default=True, help="Untimed runs before timing.")
@click.option("--runs", type=click.IntRange(min=1, max=MAX_RUNS), default=DEFAULT_RUNS, show_default=True,
              help="Timed runs (single images, batch 1).")
@click.option("--against", "against", default=None, metavar="OTHER",
              help="Also measure OTHER (e.g. the float twin) in the same run, alternating.")
@click.option("--against-engine", type=click.Choice(engine_names()), default=None,
              help="Engine for OTHER (default: MODEL's engine).")
@click.option("--target", default=None, metavar="TARGET",
              help="Build for TARGET (c engine), e.g. arm64 under qemu-aarch64 (timings emulated).")
@click.option("--lce-binary", type=click.Path(dir_okay=False), default=None,
              help="Path of lce_benchmark_model (else $EDGEBNN_LCE_BENCHMARK, else PATH).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the input image.")
@click.option("--json", "json_", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              callback=_plot_path, help="Draw latency and size side by side (.png, .svg, .pdf...).")
@click.option("--list-engines", is_flag=True, help="List the engines and whether each is available here.")
@handle_errors
def bench(model, engine, threads, warmup, runs, against, against_engine, target, lce_binary,
          seed, json_, plot, list_engines):
    """Measure per-image latency, size and memory of MODEL.

    MODEL is a .tflite file, a RUN_DIR or a shipped model name. Statistics
    are over RUNS timed single-image inferences after WARMUP untimed ones.
    """
    from edgebnn.bench.runner import list_engine_status, run_benchmark

    if list_engines:
        tgt = None
        if target:
            from edgebnn.targets import load_target

            tgt = load_target(target)
        rows = list_engine_status(lce_binary=lce_binary, target=tgt)
        if json_:
            echo_json({"engines": rows})
        else:
            click.echo(render_table(["engine", "available", "detail"],
                                    [[r["engine"], "yes" if r["available"] else "no", r["detail"]]
                                     for r in rows]))
        return
    if model is None:
        raise click.UsageError("missing argument MODEL (or use --list-engines)")
    if against_engine and not against:
        raise click.BadParameter("needs --against OTHER", param_hint="--against-engine")
    result = run_benchmark(
        model, engine=engine, threads=threads, warmup=warmup, runs=runs, against=against,
        against_engine=against_engine, target=target, lce_binary=lce_binary, seed=seed,
        progress=status,
    )
    if plot:
        from edgebnn.bench.plot import plot_result

        plot_result(result, plot)
        status(f"wrote {plot}")
    if json_:
        echo_json(result.to_dict())
    else:
        click.echo(_table(result))
