"""Draw a benchmark result: latency and model size side by side."""

from edgebnn.io import atomic_output_path


def _label(m) -> str:
    from pathlib import Path

    name = m.model if not Path(m.model).exists() else Path(m.model).name
    return f"{name}\n[{m.engine}]"


def plot_result(result, path) -> str:
    """Write a PNG with one bar per model: median latency (p90 and min-max marks) and file size.

    Uses matplotlib's Agg backend (no display needed); the file is written
    atomically.

    Args:
        result: a :class:`edgebnn.bench.BenchResult`.
        path: the .png to write.

    Returns:
        ``str(path)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(result.models)
    labels = [_label(m) for m in models]
    xs = list(range(len(models)))
    colors = ["#3b6ea8", "#d08a2c"][: len(models)] or ["#3b6ea8"]
    fig, (ax_l, ax_s) = plt.subplots(1, 2, figsize=(4 + 2.2 * len(models), 4))
    for i, m in enumerate(models):
        lat = m.latency_us
        center = lat.median if lat.median is not None else lat.mean
        ax_l.bar(i, center, color=colors[i % len(colors)], width=0.6)
        top = lat.p90 if lat.p90 is not None else lat.max
        ax_l.plot([i, i], [lat.min, top], color="black", linewidth=1)
        for y in (lat.min, top):
            ax_l.plot([i - 0.12, i + 0.12], [y, y], color="black", linewidth=1)
        ax_l.annotate(f"{center:.0f} us", (i + 0.32, center), ha="left", va="center", fontsize=8)
        kib = m.model_bytes / 1024
        ax_s.bar(i, kib, color=colors[i % len(colors)], width=0.6)
        ax_s.annotate(f"{kib:.1f} KiB", (i, kib), ha="center", va="bottom", fontsize=8,
                      xytext=(0, 2), textcoords="offset points")
    basis = "median" if all(m.latency_us.median is not None for m in models) else "median or mean"
    whisker = "min-p90" if all(m.latency_us.p90 is not None for m in models) else "min-p90 (min-max where no p90)"
    ax_l.set_title(f"latency per image (bar: {basis}; whisker: {whisker})", fontsize=9)
    ax_l.set_xlim(-0.6, len(models) - 0.1)
    ax_l.set_ylabel("microseconds")
    ax_s.set_title("model file size", fontsize=9)
    ax_s.set_ylabel("KiB")
    for ax in (ax_l, ax_s):
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8)
    title = f"edgebnn bench, {result.threads} thread(s), {models[0].latency_us.runs} runs"
    if result.ratio is not None:
        title += f", ratio {result.ratio:.2f} ({result.ratio_basis}s)"
    if any(m.emulated for m in models):
        title += " [EMULATED]"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return str(path)
