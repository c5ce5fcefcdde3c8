"""LLM inference with FFN weights on flash ("LLM in a flash", ACL 2024): model shapes, a
storage cost model from a calibration table, composable loading policies (hybrid, predictor,
windowing, row-column bundling), activation traces (real SmolLM2-135M, synthetic, predictor
error model), the DRAM neuron cache, the simulator, and planning (window from a DRAM budget,
prompt phase; ``simkit.flash.planning``)."""
from simkit.flash.activations import (ActivationTrace, load_activations, opt_layer_fractions,
                                      synthetic_trace, with_error_model)
from simkit.flash.latency import PROFILES, ComputeProfile
from simkit.flash.models import MODELS, FlashModel, get_model, quantized
from simkit.flash.predictor_errors import ErrorProfile, apply_errors
from simkit.flash.policies import LADDER, PRESETS, Policy, parse_policy
from simkit.flash.simulate import FlashConfig, FlashSimulator, FlashStats
from simkit.flash.storage import StorageCalibration, load_calibration, pcie_calibration

__all__ = ["ActivationTrace", "ComputeProfile", "ErrorProfile", "PROFILES", "apply_errors",
           "FlashConfig", "FlashModel", "FlashSimulator", "FlashStats",
           "LADDER", "MODELS", "PRESETS", "Policy", "StorageCalibration", "get_model",
           "load_activations", "load_calibration", "opt_layer_fractions", "parse_policy",
           "pcie_calibration", "quantized", "synthetic_trace", "with_error_model"]
