"""simkit: trace-driven simulators for memory-systems research in the LLM era.

Public names only; heavy modules (pandas, matplotlib) load where they are used.
"""
from simkit.errors import InputError
from simkit.units import format_bytes, parse_size

__version__ = "0.1.0"
__all__ = ["InputError", "format_bytes", "parse_size", "__version__"]
