"""Classification metrics in plain numpy (no TensorFlow).

``precision_c = TP_c / (TP_c + FP_c)``, ``recall_c = TP_c / (TP_c + FN_c)``,
``F1_c = 2 P R / (P + R)`` (0 where undefined), macro F1 is the unweighted
mean of ``F1_c`` over all classes.

Example:
    >>> import numpy as np
    >>> from edgebnn.metrics import classification_report
    >>> r = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
    >>> r["accuracy"]
    0.6666666666666666
"""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}")
    cm = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes)


def per_class(cm: np.ndarray):
    """Return ``(precision, recall, f1)`` arrays from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return precision, recall, f1


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 scores."""
    return float(per_class(confusion_matrix(y_true, y_pred, num_classes))[2].mean())


def classification_report(y_true, y_pred, num_classes: int, class_names=None) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1 and the confusion matrix.

    Returns:
        ``{"accuracy", "macro_f1", "per_class": {name: {"precision",
        "recall", "f1", "support"}}, "confusion_matrix": [[...]]}``.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    precision, recall, f1 = per_class(cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    total = cm.sum()
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            str(names[i]): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(cm[i].sum()),
            }
            for i in range(num_classes)
        },
        "confusion_matrix": cm.astype(int).tolist(),
    }
