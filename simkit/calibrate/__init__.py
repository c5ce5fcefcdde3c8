"""Where measurements meet the simulators: the one place allowed to import both
``simkit.bench`` and the simulator packages.

- ``gpu``: the KV cost model's calibration and a GPU TLB preset fitted from ``simkit bench
  gpu``'s rows;
- ``malloc``: the allocator models against the real allocators (peak footprint validation,
  cost weights fitted on measured times, block placement);
- ``storage``: the flash simulator's read schedule executed on a real file, against the cost
  model's prediction.

The CPU side needs no step here: ``simkit bench cpu`` writes its calibration file itself, and
the CPU cache/TLB presets (``zen3``, ``zen3-vm``) are plain configs the validation experiments
compare with the measurement (``cpu-validation``, ``tlb-validation``).

Floors: bench imports no simulator front; the simulators import neither bench nor this
package; experiments and the CLI sit above both.
"""
