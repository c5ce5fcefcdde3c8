"""KV-cache paging for LLM serving: model shapes, request traces, decode address traces."""
from simkit.kvpaging.decode_trace import (AddressMap, DecodeTrace, DecodeTraceConfig,
                                          DecodeTraceStats, address_map, write_decode_trace)
from simkit.kvpaging.models import MODELS, ModelShape, get_model
from simkit.kvpaging.requests import load_requests

__all__ = ["AddressMap", "DecodeTrace", "DecodeTraceConfig", "DecodeTraceStats", "MODELS",
           "ModelShape", "address_map", "get_model", "load_requests", "write_decode_trace"]
