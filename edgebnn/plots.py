"""Figures of a training run and of a comparison of runs (matplotlib, Agg).

Each function returns a ``matplotlib.figure.Figure``; callers save it (the
training code writes them into RUN_DIR atomically). No TensorFlow here.

Example:
    >>> from edgebnn.plots import confusion_figure
    >>> fig = confusion_figure([[5, 1], [0, 4]], ["a", "b"])
    >>> fig.axes[0].get_title()
    'Confusion matrix (test)'
"""

import numpy as np


def _figure(figsize):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100)


def save_figure(fig, path) -> None:
    """Save ``fig`` to ``path`` atomically (PNG by suffix)."""
    from edgebnn.io import atomic_output_path

    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")


def curves_figure(history: list, title: str = ""):
    """Loss and accuracy per epoch (train and validation) plus validation macro F1."""
    fig = _figure((10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for key, style in (("loss", "-"), ("val_loss", "--")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_loss.plot(epochs, values, style, marker="o", ms=3, label=key)
    for key, style in (("accuracy", "-"), ("val_accuracy", "--"), ("val_macro_f1", ":")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_acc.plot(epochs, values, style, marker="o", ms=3, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy / macro F1")
    ax_acc.set_title("Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def confusion_figure(cm, class_names):
    """The test confusion matrix with counts in the cells."""
    cm = np.asarray(cm)
    n = cm.shape[0]
    fig = _figure((1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([str(c) for c in class_names], rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels([str(c) for c in class_names], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test)")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def kernels_figure(kernel, title: str = "First-layer kernels"):
    """One small image per output channel of a ``(kh, kw, cin, cout)`` kernel.

    Multi-channel inputs are shown as their mean over input channels.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"expected a (kh, kw, cin, cout) kernel, found shape {kernel.shape}")
    kernel = kernel.mean(axis=2)
    cout = kernel.shape[-1]
    cols = min(cout, 8)
    rows = int(np.ceil(cout / cols))
    fig = _figure((1.2 * cols, 1.2 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    vmax = np.abs(kernel).max() or 1.0
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < cout:
            ax.imshow(kernel[..., i], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        else:
            ax.axis("off")
    fig.suptitle(title)
    return fig


def weights_figure(values, title: str):
    """Histogram of a layer's latent (pre-quantization) weights."""
    values = np.asarray(values, dtype=np.float64).ravel()
    fig = _figure((6, 3.5))
    ax = fig.subplots()
    ax.hist(values, bins=81, color="tab:blue", alpha=0.85)
    ax.set_xlabel("latent weight")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def compare_figure(rows: list):
    """Bar chart of test accuracy (and macro F1) of several runs.

    Args:
        rows: dicts with ``label``, ``test_accuracy`` and ``macro_f1``.
    """
    labels = [r["label"] for r in rows]
    acc = [100.0 * (r.get("test_accuracy") or 0.0) for r in rows]
    f1 = [100.0 * (r.get("macro_f1") or 0.0) for r in rows]
    fig = _figure((max(5.0, 1.3 * len(rows) + 2), 4.5))
    ax = fig.subplots()
    x = np.arange(len(rows))
    width = 0.38
    bars = ax.bar(x - width / 2, acc, width, label="test accuracy (%)")
    ax.bar(x + width / 2, f1, width, label="macro F1 (%)")
    for rect, value in zip(bars, acc):
        ax.text(rect.get_x() + rect.get_width() / 2, rect.get_height(), f"{value:.2f}",
                ha="center", va="bottom", fontsize=8)
    low = min(acc + f1) if rows else 0.0
    ax.set_ylim(max(0.0, low - 5.0), 100.0)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_title("Runs compared")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def sweep_figure(series: list):
    """Cells of a sweep: accuracy bars with error bars, and the runs' curves overlaid.

    Args:
        series: one dict per cell with ``label``, ``acc_mean``, ``acc_std``
            (None for one run), ``f1_mean``, ``f1_std`` and ``histories``
            (one list of ``history.csv`` rows per run).
    """
    n = len(series)
    fig = _figure((max(12.0, 0.9 * n + 9), 4.8))
    ax_bar, ax_acc, ax_loss = fig.subplots(1, 3, gridspec_kw={"width_ratios": [max(1.2, 0.18 * n), 1, 1]})
    x = np.arange(n)
    width = 0.38
    acc = [100.0 * s["acc_mean"] for s in series]
    f1 = [100.0 * s["f1_mean"] for s in series]
    acc_err = [100.0 * (s["acc_std"] or 0.0) for s in series]
    f1_err = [100.0 * (s["f1_std"] or 0.0) for s in series]
    ax_bar.bar(x - width / 2, acc, width, yerr=acc_err, capsize=3, label="test accuracy (%)")
    ax_bar.bar(x + width / 2, f1, width, yerr=f1_err, capsize=3, label="macro F1 (%)")
    low = min(a - e for a, e in zip(acc + f1, acc_err + f1_err)) if n else 0.0
    ax_bar.set_ylim(max(0.0, low - 5.0), 100.0)
    ax_bar.set_xticks(x)
    ax_bar.set_xticklabels([s["label"] for s in series], rotation=35, ha="right", fontsize=7)
    ax_bar.set_ylabel("% (mean, error bar = std over seeds)")
    ax_bar.set_title("Cells")
    ax_bar.grid(axis="y", alpha=0.3)
    ax_bar.legend(fontsize=7, loc="lower right")
    colors = [f"C{i % 10}" for i in range(n)]
    for s, color in zip(series, colors):
        for j, hist in enumerate(s["histories"]):
            epochs = [row["epoch"] for row in hist]
            label = s["label"] if j == 0 else None
            val = [row.get("val_accuracy") for row in hist]
            if any(v is not None for v in val):
                ax_acc.plot(epochs, val, "-", marker="o", ms=3, color=color, alpha=0.7, label=label)
            ax_loss.plot(epochs, [row.get("loss") for row in hist], "-", marker="o", ms=3,
                         color=color, alpha=0.7, label=label)
    ax_acc.set_title("Validation accuracy (every run)")
    ax_loss.set_title("Training loss (every run)")
    for ax, ylabel in ((ax_acc, "val accuracy"), (ax_loss, "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if n:
        ax_loss.legend(fontsize=6, loc="upper right")
    fig.subplots_adjust(wspace=0.35)
    return fig
