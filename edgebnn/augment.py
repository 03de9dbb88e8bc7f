"""Input pipelines of training: per-epoch tf.data datasets with augmentation,
and the per-channel statistics of the models' normalization layer.

The augmentation of CIFAR-10 (pad by 4 pixels, random 32x32 crop, random
horizontal flip) runs inside the tf.data pipeline with TensorFlow's stateless
random ops. Image ``i`` of epoch ``e`` gets the seed ``(seed, e * N + i)``, so
the augmented images are a pure function of ``(seed, epoch)`` like the data
order: a resumed run sees what an uninterrupted run would have seen.

Example:
    >>> import numpy as np
    >>> from edgebnn.augment import channel_stats
    >>> x = np.zeros((2, 4, 4, 3), np.uint8); x[..., 0] = 10; x[1, ..., 2] = 20
    >>> mean, std = channel_stats(x)
    >>> [round(m, 1) for m in mean], [round(s, 1) for s in std]
    ([10.0, 0.0, 10.0], [1.0, 1.0, 10.0])
"""

import numpy as np

from edgebnn.errors import ConfigError


def channel_stats(x: np.ndarray):
    """Per-channel mean and standard deviation of uint8 ``(N, H, W, C)`` images.

    Computed exactly from each channel's histogram (no float copy of the
    array). A channel whose standard deviation is below 1 (a constant
    channel, pixel units) gets 1: it is only centred, never blown up.

    Returns:
        ``(mean, std)``: two lists of ``C`` floats, in pixel units (0..255).

    Raises:
        ConfigError: no images, or not uint8 NHWC.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype != np.uint8 or len(x) == 0:
        raise ConfigError(
            f"'normalize: per-channel' needs uint8 (N, H, W, C) training images with N >= 1; "
            f"found {x.dtype} of shape {x.shape}"
        )
    values = np.arange(256.0)
    mean, std = [], []
    for c in range(x.shape[-1]):
        hist = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        m = float((hist * values).sum() / hist.sum())
        s = float(np.sqrt((hist * (values - m) ** 2).sum() / hist.sum()))
        mean.append(m)
        std.append(s if s >= 1.0 else 1.0)
    return mean, std


def augment_map(kind: str, *, pad: int, seed: int, epoch: int, n: int, shape):
    """The per-image map ``(i, uint8 image, label) -> (float32 image, label)`` of one epoch.

    ``i`` is the image's position in the epoch's order (of ``n`` images), so
    the crop and flip of an image depend only on ``(seed, epoch, i)``: the same
    whether one process or several workers (each mapping its shard with the
    global positions) build the epoch, and after a resume.

    Raises:
        ConfigError: ``kind`` is not ``crop`` or ``crop-flip``.
    """
    from edgebnn._tf import import_tf

    if kind not in ("crop", "crop-flip"):
        raise ConfigError(f"'augment' must be crop or crop-flip for a tf.data pipeline; found '{kind}'")
    tf = import_tf()[0]
    h, w, c = (int(d) for d in shape)
    flip = kind == "crop-flip"
    base = tf.constant([int(seed), int(epoch) * int(n)], dtype=tf.int64)

    def augment(i, image, label):
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(base + tf.stack([tf.constant(0, tf.int64), i]), 2)
        )
        image = tf.cast(image, tf.float32)
        if pad:
            image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, (h, w, c), seed=crop_seed)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        return image, label

    return augment


def epoch_dataset(x: np.ndarray, y: np.ndarray, *, kind: str, pad: int, seed: int, epoch: int,
                  batch_size: int):
    """A batched, prefetched ``tf.data.Dataset`` of one epoch's augmented images.

    Args:
        x: ``(N, H, W, C)`` uint8 images, already in this epoch's order.
        y: ``(N, K)`` float32 one-hot labels in the same order.
        kind: ``crop`` or ``crop-flip`` (see :class:`edgebnn.config.TrainConfig`).
        pad: zero padding in pixels before the random crop.
        seed, epoch: the stateless seeds are ``(seed, epoch * N + i)``.
        batch_size: images per batch (the last batch may be smaller).

    Returns:
        A dataset of ``(float32 images, labels)`` batches.
    """
    from edgebnn._tf import import_tf

    tf = import_tf()[0]
    fn = augment_map(kind, pad=pad, seed=seed, epoch=epoch, n=len(x), shape=x.shape[1:])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).enumerate()
    ds = ds.map(lambda i, xy: fn(i, *xy), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
