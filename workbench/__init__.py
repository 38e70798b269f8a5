"""Workbench: a browser workbench for fine-tuning language models."""

__version__ = "0.1.0"

import logging as _logging

# bitsandbytes warns at import on every CPU without an optional hub-fetched kernel; the
# fallback it uses is correct, so the warning is only noise in logs
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
