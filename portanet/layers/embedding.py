"""Embedding: integer indices to rows of a learned table."""
from .. import initializers, regularizers
from ..backend import get as _backend, portable_op
from ..errors import check_positive_int, invalid
from .base import REGISTRY, InitializerArg, Layer, RegularizerArg


@portable_op("scatter_add_rows")
def _scatter_add_rows(indices, rows, size):
    """A (size, d) array whose row i is the sum of `rows` (n, d) at the positions where `indices`
    (n,) is i: one-hot(indices)^T @ rows, a GEMM. Fast path "scatter_add_rows"."""
    xp = _backend().xp
    one_hot = xp.astype(xp.reshape(indices, (-1, 1)) == xp.arange(size, dtype=indices.dtype), rows.dtype)
    return xp.matmul(xp.matrix_transpose(one_hot), rows)


@REGISTRY.register()
class Embedding(Layer):
    """Turns integer indices into learned vectors: y = embeddings[x].

    Indices x (batch, ...) of values in [0, input_dim) -> embeddings[x] (batch, ..., output_dim),
    embeddings (input_dim, output_dim).

    The indices arrive as the model's float inputs (exact up to 2**24 in float32) and are read
    as int32. Backward: d embeddings = the rows of dy added at their indices (a scatter-add; a
    one-hot GEMM where the backend has no faster one); the indices have no gradient (dx = None).

    Args:
        input_dim: positive int, the vocabulary size (the largest index + 1).
        output_dim: positive int, the size of each embedding.
        embeddings_initializer: initializer of the table. Default "uniform" (Keras'
            RandomUniform(-0.05, 0.05)).
        embeddings_regularizer: penalty on the table, as Dense's kernel_regularizer. Default None.
        mask_zero: only False (portanet has no masks). Default False.
        **kwargs: `Layer`'s arguments (name, trainable, input_shape).

    Example:
        model = pn.Sequential([pn.Input((20,)), Embedding(10000, 16),
                               pn.layers.GlobalAveragePooling1D(data_format="channels_last"),
                               pn.layers.Dense(1, activation="sigmoid")])
    """

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: InitializerArg = "uniform",
                 embeddings_regularizer: RegularizerArg = None, mask_zero: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        name = "random_uniform" if embeddings_initializer == "uniform" else embeddings_initializer
        self.embeddings_initializer = initializers.get(name)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        if mask_zero is not False:
            raise invalid("mask_zero", "False (portanet has no masking)", mask_zero)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def param_specs(self):
        return {"embeddings": ((self.input_dim, self.output_dim), self.embeddings_initializer,
                               self.embeddings_regularizer)}

    def forward(self, params, x, training=False, key=None):
        xp = _backend().xp
        indices = xp.reshape(xp.astype(x, xp.int32), (-1,))
        y = xp.take(params["embeddings"], indices, axis=0)
        return xp.reshape(y, (*x.shape, self.output_dim)), indices

    def backward(self, params, indices, dy):
        rows = _backend().xp.reshape(dy, (-1, self.output_dim))
        return None, {"embeddings": _backend().op("scatter_add_rows")(indices, rows, self.input_dim)}

    def get_config(self):
        reg = self.embeddings_regularizer
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": None if reg is None else regularizers.serialize(reg)}
