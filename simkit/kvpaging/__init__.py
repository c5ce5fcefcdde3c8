"""KV-cache paging for LLM serving: model shapes, request traces, KV managers (static
reservation, PagedAttention, vAttention), a continuous-batching serving engine with a
calibrated cost model, and decode address traces."""
from simkit.kvpaging.decode_trace import (AddressMap, DecodeTrace, DecodeTraceConfig,
                                          DecodeTraceStats, address_map, write_decode_trace)
from simkit.kvpaging.cluster import ServingCluster
from simkit.kvpaging.engine import ServingSimulator
from simkit.kvpaging.kernels import PAGED_KERNELS
from simkit.kvpaging.gpus import GPUSpec, get_gpu, kv_capacity_bytes
from simkit.kvpaging.managers import make_manager
from simkit.kvpaging.managers.base import Admission, KVManager, MemoryUsage
from simkit.kvpaging.metrics import SLO, ServingStats
from simkit.kvpaging.models import MODELS, ModelShape, get_model, tp_shard
from simkit.kvpaging.requests import load_requests
from simkit.kvpaging.scheduler import SchedulerConfig
from simkit.kvpaging.workload import load_trace, preset_requests, synthetic_requests

__all__ = ["AddressMap", "Admission", "DecodeTrace", "DecodeTraceConfig", "DecodeTraceStats",
           "GPUSpec", "KVManager", "MODELS", "MemoryUsage", "ModelShape", "PAGED_KERNELS", "SLO",
           "SchedulerConfig", "ServingCluster", "ServingSimulator", "ServingStats", "address_map",
           "get_gpu", "get_model",
           "kv_capacity_bytes", "load_requests", "load_trace", "make_manager",
           "preset_requests", "synthetic_requests", "tp_shard", "write_decode_trace"]
