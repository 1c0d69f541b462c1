"""What a compiled model computes on each of its outputs: a loss (or none), the loss's weight in
the total, and metrics (docs/architecture.md, "Outputs, losses and metrics").

`compile(loss=..., loss_weights=..., metrics=..., weighted_metrics=...)` takes, as Keras does, one
entry for a single output, or a list (one entry per output, in order) or a dict (keyed by output
layer names) for several. A single loss is applied to every output. The logs are named as Keras
names them: "loss" (the weighted total, with the weight penalties), where several outputs have a
loss "<output>_loss" (each one's unweighted loss), and for several outputs "<output>_<metric>"; metrics keep the name
they were given ("acc" stays acc), a repeated name gets "_1", "_2", and a weighted metric whose
name is taken gets "weighted_".
"""
from .. import losses as losses_module, metrics as metrics_module
from ..errors import InvalidTypeError, invalid, is_number


class Head:
    """One output: `name`, `loss` (a Loss or None), `weight`, and `metrics`: (log name, Metric,
    weighted) triples."""

    def __init__(self, name, loss, weight):
        self.name, self.loss, self.weight, self.metrics = name, loss, weight, []

    @property
    def label_kind(self):
        return self.loss.label_kind if self.loss is not None else "dense"


def _per_output(value, names, argument, single_applies_to_all):
    """`value` as one entry per output: from a dict keyed by output names, a list with one entry
    per output, or (one output, or `single_applies_to_all`) a single entry."""
    if len(names) == 1 and isinstance(value, (list, tuple)) and len(value) == 1:
        return list(value)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise invalid(argument, f"a dict keyed by output names {names}", f"unknown keys {unknown}")
        return [value.get(name) for name in names]
    if len(names) > 1 and isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise invalid(argument, f"a list with one entry per output ({len(names)}: {names}) or a dict keyed "
                          f"by output names", f"a list of {len(value)} entries")
        return list(value)
    if len(names) > 1 and not single_applies_to_all and value is not None:
        raise invalid(argument, f"a list with one entry per output ({names}) or a dict keyed by output names",
                      value, InvalidTypeError)
    return [value] * len(names)


def _metric_list(entry, argument):
    if entry is None:
        return []
    if isinstance(entry, (str, metrics_module.Metric, dict)):
        return [entry]
    if not isinstance(entry, (list, tuple)):
        raise invalid(argument, "a list of metric names or Metric objects", entry, InvalidTypeError)
    return list(entry)


def make_heads(output_names, loss, loss_weights=None, metrics=None, weighted_metrics=None):
    """The heads of a model with outputs `output_names`, from compile's arguments (checked)."""
    if loss is None:
        raise invalid("loss", "a loss name or portanet.losses.Loss", loss, InvalidTypeError)
    several = len(output_names) > 1
    per_loss = [None if entry is None else losses_module.get(entry)
                for entry in _per_output(loss, output_names, "loss", single_applies_to_all=True)]
    if all(entry is None for entry in per_loss):
        raise invalid("loss", "a loss for at least one output", loss)
    weights = [1.0] * len(output_names) if loss_weights is None else _per_output(
        loss_weights, output_names, "loss_weights", False)
    weights = [1.0 if w is None else w for w in weights]
    for w in weights:
        if not is_number(w) or w < 0:
            raise invalid("loss_weights", "non-negative numbers", loss_weights)
    heads = [Head(name, entry, float(w)) for name, entry, w in zip(output_names, per_loss, weights)]
    taken = {"loss", *(name for _, name in output_losses(heads))}
    for argument, value, weighted in (("metrics", metrics, False), ("weighted_metrics", weighted_metrics, True)):
        if value is None:
            continue
        if not several and isinstance(value, (list, tuple, str, metrics_module.Metric)):
            entries = [_metric_list(value, argument)]
        else:
            entries = [_metric_list(e, argument) for e in _per_output(value, output_names, argument, False)]
        for head, items in zip(heads, entries):
            for item in items:
                metric = metrics_module.get(item, head.loss)
                prefix = f"{head.name}_" if several else ""
                name = prefix + metric.name
                if name in taken:
                    name = prefix + "weighted_" + metric.name if weighted else name
                    count = 1
                    while name in taken:
                        name, count = f"{prefix}{'weighted_' if weighted else ''}{metric.name}_{count}", count + 1
                taken.add(name)
                head.metrics.append((name, metric, weighted))
    return heads


def output_losses(heads):
    """(output index, log name) of each output's own loss, logged where several outputs have one."""
    with_loss = [(o, f"{h.name}_loss") for o, h in enumerate(heads) if h.loss is not None]
    return with_loss if len(with_loss) > 1 else []


def log_names(heads):
    """The logs' names in Keras' order: the loss, each output's loss, the metrics."""
    return ["loss", *(name for _, name in output_losses(heads)), *(name for h in heads for name, _, _ in h.metrics)]


def serialize(heads):
    """The compile settings of the heads as JSON-able data (for model files)."""
    several = len(heads) > 1
    loss = [None if h.loss is None else losses_module.serialize(h.loss) for h in heads]
    config = {"loss": loss if several else loss[0], "loss_weights": [h.weight for h in heads]}
    for key, weighted in (("metrics", False), ("weighted_metrics", True)):
        entries = [[metrics_module.serialize(m) for _, m, w in h.metrics if w == weighted] for h in heads]
        config[key] = entries if several else entries[0]
    return config


def deserialize(config):
    """compile's keyword arguments from `serialize`'s data (older files: loss and metrics only)."""
    loss = config["loss"]
    loss = [None if e is None else losses_module.deserialize(e) for e in loss] if isinstance(
        loss, list) else losses_module.deserialize(loss)
    return {"loss": loss, "loss_weights": config.get("loss_weights"), "metrics": config.get("metrics"),
            "weighted_metrics": config.get("weighted_metrics")}
