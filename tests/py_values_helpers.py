"""Values for py_values_SUITE: objects with no Erlang counterpart, numeric arrays."""

import array

import numpy as np


class Counter:
    """An object with no Erlang counterpart whose str() is readable."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Counter(n={self.n})"


class ArrayLike:
    """No buffer of its own, only `__array__` (as pandas and torch objects have)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.array(self.values, dtype=dtype)


def counter(n: int) -> Counter:
    return Counter(n)


def counter_in_list(n: int) -> list:
    return [1, {"k": Counter(n)}]


def longdouble():
    return np.longdouble(1.5)


def float_matrix(rows: int, cols: int):
    return np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)


def typed(values: list, dtype: str):
    return np.array(values, dtype=dtype)


def transposed():
    return np.arange(6, dtype=np.int32).reshape(2, 3).T


def big_endian():
    return np.arange(3, dtype=">f8")


def std_array(code: str, values: list):
    return array.array(code, values)


def object_array():
    return np.array([1, "a"], dtype=object)


def array_like(values: list[float]) -> ArrayLike:
    return ArrayLike(values)


def nested_arrays():
    return {"a": np.array([1, 2], dtype=np.uint8), "b": [np.zeros(2)]}


def counters(n: int):
    """A generator of Counters, preceded by a plain number."""
    yield 0
    for i in range(n):
        yield Counter(i)


def empty_matrix():
    return np.zeros((0, 3))


def reversed_view():
    return np.arange(3, dtype=np.int16)[::-1]
