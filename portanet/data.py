"""Data that does not sit in one array: `Sequence` (Keras' `PyDataset` protocol), for `fit`,
`evaluate` and `predict`. Generators and other iterables of batches are accepted as they are.

    class Batches(pn.data.Sequence):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)               # workers, max_queue_size
            self.x, self.y, self.batch_size = x, y, batch_size

        def __len__(self):                            # batches per epoch
            return math.ceil(len(self.x) / self.batch_size)

        def __getitem__(self, i):                     # batch i: (x, y) or (x, y, sample_weight)
            rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return self.x[rows], self.y[rows]

    model.fit(Batches(x, y, 64, workers=4), epochs=5)

With `workers` > 1, that many threads read batches ahead, at most `max_queue_size` of them,
while the device trains (docs/architecture.md, "Streams").
"""
from .errors import InvalidArgumentError, check_positive_int, invalid


class Sequence:
    """A dataset of numbered batches: `__len__` (batches per epoch), `__getitem__(i)` (batch i)
    and, optionally, `on_epoch_end()`. `num_batches` is `len(self)` (None: endless, batches are
    read until `steps_per_epoch`)."""

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        if use_multiprocessing:
            raise InvalidArgumentError(
                "Invalid value for `use_multiprocessing`. Expected False: portanet reads batches ahead in "
                "threads (workers=...), not processes. Received: use_multiprocessing=True")
        self.workers = check_positive_int("workers", workers)
        self.use_multiprocessing = False
        self.max_queue_size = check_positive_int("max_queue_size", max_queue_size)

    @property
    def num_batches(self):
        try:
            return len(self)
        except TypeError:
            return None

    def __len__(self):
        raise TypeError(f"{type(self).__name__} defines no __len__: its number of batches is unknown")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) returning batch `index`")

    def on_epoch_end(self):
        """Called after every epoch (reshuffle here, for example)."""


PyDataset = Sequence


def check_stream_settings(workers, max_queue_size, use_multiprocessing):
    """fit's `workers`, `max_queue_size` (None: the dataset's own) and `use_multiprocessing`."""
    if use_multiprocessing:
        raise invalid("use_multiprocessing", "False (batches are read ahead by threads: workers=...)",
                      use_multiprocessing)
    return (None if workers is None else check_positive_int("workers", workers),
            None if max_queue_size is None else check_positive_int("max_queue_size", max_queue_size))
