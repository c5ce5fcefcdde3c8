"""Where measurements meet the simulators: the one place allowed to import both
``simkit.bench`` and the simulator packages.

- ``gpu``: the KV cost model's calibration and a GPU TLB preset fitted from ``simkit bench
  gpu``'s rows;
- ``malloc``: the allocator models against the real allocators (peak footprint validation,
  cost weights fitted on measured times, block placement);
- ``storage``: the flash simulator's read schedule executed on a real file, against the cost
  model's prediction.

- ``cpu``: cache and MMU presets for this host (``--preset host`` / ``host:FILE.json``) from
  its sysfs/CPUID description and a ``simkit bench cpu --calibration`` file's measured latencies;
  the test suite simulates with them and compares with the knees it measures in the same run.

Floors: bench imports no simulator front; the simulators import neither bench nor this
package; experiments and the CLI sit above both.
"""
