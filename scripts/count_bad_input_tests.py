"""Count the test cases that feed bad input or faults to an entry point (the reliability note's table).

A case is a collected test item (each parametrisation counts) whose test function
expects a refusal: ``pytest.raises(InputError ...)``, a CLI exit status 1 with an
``error:`` line, or a notification in napari. Run: ``.venv/bin/python scripts/count_bad_input_tests.py``.
"""

import collections
import inspect
import re
import sys

import pytest

PATTERN = re.compile(r"raises\(\s*(InputError|ValueError|Cancelled)|\) == 1\b|error: |show_error|_fail\(|messages")


class Collector:
    def __init__(self):
        self.items = []

    def pytest_collection_modifyitems(self, items):
        self.items = list(items)


def main() -> int:
    collector = Collector()
    pytest.main(["--collect-only", "-q", "-p", "no:warnings", "tests"], plugins=[collector])
    per_module = collections.Counter()
    for item in collector.items:
        source = inspect.getsource(item.function)
        if PATTERN.search(source):
            per_module[item.module.__name__] += 1
    total = sum(per_module.values())
    print(f"\n{total} bad-input and fault cases in {len(per_module)} test modules")
    for name, count in per_module.most_common():
        print(f"{count:4d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
