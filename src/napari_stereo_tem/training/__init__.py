"""Training of the networks on synthetic scenes (and, later, user corrections).

Import the trainers from their modules (:mod:`.detector`; the matcher's from
:mod:`.matcher`); they are progress generators (see :mod:`..progress`).
"""

__all__: list[str] = []
