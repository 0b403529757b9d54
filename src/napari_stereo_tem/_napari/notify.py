"""Showing core errors to the user: napari notifications, and the full text in the dock.

napari's toasts show one line and cut the rest off (a double click expands
them, which few users find). A dock widget therefore shows the whole message
in its own report area and a short toast that says where the rest is
(:func:`show_error_in`).
"""

from __future__ import annotations

import functools
import re

from napari.utils.notifications import show_error

from ..checks import InputError

__all__ = ["report_input_errors", "show_error_in", "toast_text", "dock_message_label", "TOAST_CHARS"]

#: About what one line of a napari toast shows.
TOAST_CHARS = 90

#: The last message :func:`report_input_errors` caught with ``to_dock=True`` (UI thread only),
#: for the widget that called the function to show in full.
last_error: str | None = None


def toast_text(message: str, *, limit: int = TOAST_CHARS) -> str:
    """``message`` if it fits on one toast line, else its first clause and a pointer to the dock."""
    message = str(message).strip()
    if len(message) <= limit and "\n" not in message:
        return message
    head = re.split(r"(?<=[.;:])\s|\n", message, maxsplit=1)[0].rstrip(".;:")
    if len(head) > limit - 30:
        head = head[: limit - 31].rstrip() + "..."
    return f"{head} (the whole message is in the dock)"


def show_error_in(message: str, panel=None) -> None:
    """Show ``message`` in full in ``panel`` (anything with a ``value``) and as a short toast.

    Without a panel the toast carries the whole message, as before.
    """
    if panel is None:
        show_error(str(message))
        return
    try:
        panel.value = str(message)
    except RuntimeError:  # the dock was closed
        show_error(str(message))
        return
    show_error(toast_text(message))


def report_input_errors(default=None, *, to_dock: bool = False):
    """Decorate a widget function so an :class:`InputError` becomes a notification.

    The message is the core's own (it names the problem and the fix); the
    function then returns ``default`` so nothing is added to the viewer. With
    ``to_dock``, the toast is short and the whole message is kept in
    :data:`last_error` for the calling widget to show.
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            global last_error
            try:
                return func(*args, **kwargs)
            except InputError as err:
                if to_dock:
                    last_error = str(err)
                    show_error(toast_text(str(err)))
                else:
                    show_error(str(err))
                return default() if callable(default) else default

        return wrapper

    return decorate


def dock_message_label(widget):
    """Add a wrapping message label under a FunctionGui that shows what its call reported (errors in full)."""
    from .task_widget import report_box

    label = report_box()
    widget.append(label)

    def after_call(*_):
        global last_error
        label.value = last_error or ""
        last_error = None

    widget.called.connect(after_call)
    widget.message = label
    return label
