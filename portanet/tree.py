"""Nested dicts (and lists/tuples) of arrays, mapped leaf by leaf: params, grads, optimizer state."""


def tree_map(fn, tree, *rest):
    """Apply `fn` to corresponding leaves of `tree` and `rest` (same structure); returns a new tree."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree))
    return fn(tree, *rest)


def tree_leaves(tree):
    """The leaves of `tree` in a fixed order (dict insertion order)."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in tree_leaves(v)]
    return [tree]


def tree_unflatten(tree, leaves):
    """A tree with the structure of `tree` and the given leaves, in `tree_leaves` order."""
    leaves = iter(leaves)
    return tree_map(lambda _: next(leaves), tree)
