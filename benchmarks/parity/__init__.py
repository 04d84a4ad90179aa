# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity harness: our components against the reference implementations
on identical inputs (``python benchmarks/parity/run.py METHOD --reference
PATH``; ``docs/parity.md``)."""
