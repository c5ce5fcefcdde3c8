"""Traces: the access-record format, readers and writers, importers, generators, the catalog."""
from simkit.trace.format import (ACCESS_DTYPE, Op, Trace, TraceMeta, TraceWriter, make_records,
                                 open_trace, write_trace)

__all__ = ["ACCESS_DTYPE", "Op", "Trace", "TraceMeta", "TraceWriter", "make_records",
           "open_trace", "write_trace"]
