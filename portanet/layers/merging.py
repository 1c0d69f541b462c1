"""Merging layers: several inputs of one shape combined element-wise (Add, Subtract, Multiply,
Average, Maximum, Minimum), joined (Concatenate) or multiplied as vectors (Dot); and Keras'
functional helpers (`add([a, b])` is `Add()([a, b])`)."""
from ..backend import get as _backend
from ..errors import invalid
from .base import REGISTRY, Layer


class _ElementWise(Layer):
    """y = f(x_1, x_2, ...) element by element; every input has the same shape."""
    multi_input = True
    inputs = "two or more"

    def compute_output_shape(self, input_shapes):
        count_ok = len(input_shapes) == 2 if self.inputs == "two" else len(input_shapes) >= 2
        if not count_ok or any(s != input_shapes[0] for s in input_shapes):
            raise invalid("input_shape", f"{self.inputs} equal shapes for layer '{self.name}'", input_shapes)
        return input_shapes[0]


@REGISTRY.register()
class Add(_ElementWise):
    """Adds a list of inputs of one shape: y = x_1 + x_2 + ...;  each dx_i = dy.

    Args:
        **kwargs: `Layer`'s arguments (name, trainable).

    Example:
        a, b = pn.Input((16,)), pn.Input((16,))
        y = Add()([pn.layers.Dense(8)(a), pn.layers.Dense(8)(b)])     # or add([...])
    """

    def forward(self, params, xs, training=False, key=None):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y, len(xs)

    def backward(self, params, n, dy):
        return [dy] * n, {}


@REGISTRY.register()
class Subtract(_ElementWise):
    """Subtracts the second of two inputs from the first: y = x_1 - x_2;  dx_1 = dy, dx_2 = -dy.

    Args:
        **kwargs: `Layer`'s arguments (name, trainable).
    """
    inputs = "two"

    def forward(self, params, xs, training=False, key=None):
        return xs[0] - xs[1], None

    def backward(self, params, cache, dy):
        return [dy, -dy], {}


@REGISTRY.register()
class Multiply(_ElementWise):
    """Multiplies inputs element-wise: y = x_1 * x_2 * ...;  dx_i = dy * (the product of the others).

    Args:
        **kwargs: `Layer`'s arguments (name, trainable).
    """

    def forward(self, params, xs, training=False, key=None):
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y, xs

    def backward(self, params, xs, dy):
        dxs = []
        for i in range(len(xs)):
            d = dy
            for j, x in enumerate(xs):
                if j != i:
                    d = d * x
            dxs.append(d)
        return dxs, {}


@REGISTRY.register()
class Average(_ElementWise):
    """Averages inputs element-wise: y = (x_1 + ... + x_n) / n;  each dx_i = dy / n.

    Args:
        **kwargs: `Layer`'s arguments (name, trainable).
    """

    def forward(self, params, xs, training=False, key=None):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y * (1.0 / len(xs)), len(xs)

    def backward(self, params, n, dy):
        return [dy * (1.0 / n)] * n, {}


class _Extremum(_ElementWise):
    """The element-wise maximum (or minimum) of inputs of one shape.

    y = the extremum of the x_i at each element; dy goes to the first input that holds it (ties
    never split or double the gradient, as MaxPooling's rule).

    Args:
        **kwargs: `Layer`'s arguments (name, trainable).
    """

    def forward(self, params, xs, training=False, key=None):
        y = xs[0]
        for x in xs[1:]:
            y = self.pick(_backend().xp, y, x)
        return y, (xs, y)

    def backward(self, params, cache, dy):
        xp = _backend().xp
        (xs, y), dxs, rest = cache, [], dy     # `rest`: the gradient not yet given to an input
        for x in xs:
            hit = x == y
            dxs.append(xp.where(hit, rest, 0.0))
            rest = xp.where(hit, 0.0, rest)
        return dxs, {}


@REGISTRY.register()
class Maximum(_Extremum):
    __doc__ = _Extremum.__doc__

    @staticmethod
    def pick(xp, a, b):
        return xp.maximum(a, b)


@REGISTRY.register()
class Minimum(_Extremum):
    __doc__ = _Extremum.__doc__.replace("maximum (or minimum)", "minimum")

    @staticmethod
    def pick(xp, a, b):
        return xp.minimum(a, b)


@REGISTRY.register()
class Concatenate(Layer):
    """Joins inputs along `axis` (counted with the batch axis, as Keras); dx_i is input i's slice
    of dy. The inputs have one rank and equal sizes along the other axes.

    Args:
        axis: a non-zero int (axis 0 is the batch). Default -1.
        **kwargs: `Layer`'s arguments (name, trainable).

    Example:
        a, b = pn.Input((3, 8)), pn.Input((3, 4))
        y = Concatenate()([a, b])                  # (None, 3, 12); or concatenate([a, b])
    """
    multi_input = True

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise invalid("axis", "a non-zero int (axis 0 is the batch)", axis)
        self.axis = axis

    def compute_output_shape(self, input_shapes):
        rank = len(input_shapes[0]) + 1
        if len(input_shapes) < 2 or any(len(s) + 1 != rank for s in input_shapes) or not -rank <= self.axis < rank:
            raise invalid("input_shape", f"two or more shapes of one rank with axis {self.axis} in range",
                          input_shapes)
        axis = self.axis % rank - 1
        rest = [s[:axis] + s[axis + 1:] for s in input_shapes]
        if any(r != rest[0] for r in rest):
            raise invalid("input_shape", f"shapes equal except along axis {self.axis}", input_shapes)
        out = list(input_shapes[0])
        out[axis] = sum(s[axis] for s in input_shapes)
        return tuple(out)

    def forward(self, params, xs, training=False, key=None):
        axis = self.axis % (xs[0].ndim)
        return _backend().xp.concat(xs, axis=axis), [x.shape[axis] for x in xs]

    def backward(self, params, sizes, dy):
        axis = self.axis % dy.ndim
        pieces, start = [], 0
        for size in sizes:
            index = [slice(None)] * dy.ndim
            index[axis] = slice(start, start + size)
            pieces.append(dy[tuple(index)])
            start += size
        return pieces, {}

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@REGISTRY.register()
class Dot(Layer):
    """Dot products of two inputs along `axes` (Keras' Dot), example by example:
    (batch, d) . (batch, d) -> (batch, 1) with axes=1; (batch, a, k) . (batch, b, k) ->
    (batch, a, b) with axes=2 (or (2, 2)); `normalize` takes the cosine (each input divided by its
    L2 norm along its axis first).

    Written as y = A @ B with A = x_1 moved to (batch, rows, k) and B = x_2 to (batch, k, cols):
    dA = dy @ B^T, dB = A^T @ dy; through the normalization u = v / |v|: dv = (du - u <u, du>) / |v|.

    Args:
        axes: a non-zero int, or a pair (one axis of each input), counted with the batch axis.
            Inputs have shape (d,) or (rows, d) without the batch.
        normalize: whether to divide each input by its L2 norm along its axis first (the cosine
            similarity). Default False.
        **kwargs: `Layer`'s arguments (name, trainable).
    """
    multi_input = True

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, int) and not isinstance(axes, bool) else axes
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
                isinstance(a, int) and not isinstance(a, bool) and a != 0 for a in pair):
            raise invalid("axes", "a non-zero int or a pair of them (axis 0 is the batch)", axes)
        self.axes, self.normalize = tuple(pair), bool(normalize)

    def compute_output_shape(self, input_shapes):
        if len(input_shapes) != 2 or any(len(s) not in (1, 2) for s in input_shapes):
            raise invalid("input_shape", f"two inputs of shape (d,) or (rows, d) for layer '{self.name}'",
                          input_shapes)
        a, b = (self._axis(s, i) for i, s in enumerate(input_shapes))
        if input_shapes[0][a] != input_shapes[1][b]:
            raise invalid("input_shape", f"inputs of equal size along axes {self.axes}", input_shapes)
        rows = [d for i, d in enumerate(input_shapes[0]) if i != a]
        cols = [d for i, d in enumerate(input_shapes[1]) if i != b]
        return tuple(rows + cols) or (1,)

    def _axis(self, shape, i):
        """Input i's axis as an index into its shape without the batch."""
        return self.axes[i] % (len(shape) + 1) - 1

    def _matrix(self, xp, x, axis, contracted_last):
        """x (batch, ...) as (batch, rows, k) (or (batch, k, cols)), the contracted axis k."""
        if x.ndim == 2:
            return xp.reshape(x, (x.shape[0], 1, x.shape[1]) if contracted_last else (x.shape[0], x.shape[1], 1))
        if (axis == 2) != contracted_last:
            x = xp.permute_dims(x, (0, 2, 1))
        return x

    def forward(self, params, xs, training=False, key=None):
        xp = _backend().xp
        vectors = [self._normalized(xp, x, i)[0] for i, x in enumerate(xs)] if self.normalize else list(xs)
        a = self._matrix(xp, vectors[0], self._axis(xs[0].shape[1:], 0) + 1, True)
        b = self._matrix(xp, vectors[1], self._axis(xs[1].shape[1:], 1) + 1, False)
        y = xp.matmul(a, b)
        return xp.reshape(y, (y.shape[0], *self.output_shape)), (xs, vectors, a, b)

    def _normalized(self, xp, x, i):
        axis = self._axis(x.shape[1:], i) + 1
        norm = xp.sqrt(xp.sum(x * x, axis=axis, keepdims=True))
        return x / norm, norm, axis

    def backward(self, params, cache, dy):
        xp = _backend().xp
        xs, vectors, a, b = cache
        dy = xp.reshape(dy, (a.shape[0], a.shape[1], b.shape[2]))
        da, db = xp.matmul(dy, xp.matrix_transpose(b)), xp.matmul(xp.matrix_transpose(a), dy)
        dxs = []
        for i, (d, v) in enumerate(zip((da, db), vectors)):
            axis = self._axis(v.shape[1:], i) + 1
            if v.ndim == 3 and (axis == 2) != (i == 0):
                d = xp.permute_dims(d, (0, 2, 1))
            d = xp.reshape(d, v.shape)
            if self.normalize:
                u, norm, _ = self._normalized(xp, xs[i], i)
                d = (d - u * xp.sum(u * d, axis=axis, keepdims=True)) / norm
            dxs.append(d)
        return dxs, {}

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


def _functional(layer, inputs="a list of tensors (`SymbolicTensor`s, or arrays) of one shape"):
    """Keras' functional helper of merge layer `layer`: `name(inputs, **kwargs)` is
    `layer(**kwargs)(inputs)`."""
    def helper(inputs, **kwargs):
        return layer(**kwargs)(inputs)

    helper.__name__ = helper.__qualname__ = layer.__name__.lower()
    helper.__doc__ = f"""`{layer.__name__}()(inputs)`, Keras' functional helper.

    Args:
        inputs: {inputs}.
        **kwargs: the layer's arguments (name, trainable).

    Returns:
        The layer's output.
    """
    return helper


add = _functional(Add)
subtract = _functional(Subtract, "a list of two tensors (`SymbolicTensor`s, or arrays) of one shape")
multiply = _functional(Multiply)
average = _functional(Average)
maximum = _functional(Maximum)
minimum = _functional(Minimum)


def concatenate(inputs, axis=-1, **kwargs):
    """`Concatenate(axis)(inputs)`, Keras' functional helper.

    Args:
        inputs: a list of tensors (`SymbolicTensor`s, or arrays).
        axis: the axis joined along, counted with the batch axis. Default -1.
        **kwargs: the layer's arguments (name, trainable).

    Returns:
        The layer's output.
    """
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes, normalize=False, **kwargs):
    """`Dot(axes, normalize)(inputs)`, Keras' functional helper.

    Args:
        inputs: a list of two tensors (`SymbolicTensor`s, or arrays).
        axes: as `Dot`'s.
        normalize: as `Dot`'s. Default False.
        **kwargs: the layer's arguments (name, trainable).

    Returns:
        The layer's output.
    """
    return Dot(axes, normalize=normalize, **kwargs)(inputs)
