"""Showing core errors to the user as napari notifications."""

from __future__ import annotations

import functools

from napari.utils.notifications import show_error

from ..checks import InputError

__all__ = ["report_input_errors"]


def report_input_errors(default=None):
    """Decorate a widget function so an :class:`InputError` becomes a notification.

    The message is the core's own (it names the problem and the fix); the
    function then returns ``default`` so nothing is added to the viewer.
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except InputError as err:
                show_error(str(err))
                return default() if callable(default) else default

        return wrapper

    return decorate
