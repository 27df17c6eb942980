"""Code of py_errors_SUITE: a failure four frames deep, an exception with attributes."""


class PaymentError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def outer(d):
    return middle(d)


def middle(d):
    return inner(d)


def inner(d):
    return d["missing_key"]


def pay():
    raise PaymentError("payment required", 402)


def unicode_error():
    raise ValueError("日本")
