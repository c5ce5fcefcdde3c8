"""GPU microbenchmarks (``simkit bench gpu``), where a CUDA device is present.

- ``measure``: the microbenchmarks themselves (torch, NVML, the driver API), ``run``, and the
  tables they write (``write_tables``) or are read back from (``read_results``);
- ``rows``: what each benchmark's rows hold, the chase orders, checks, summaries, JSON
  documents and plots; pure Python, tested on the CPU with synthetic rows;
- ``_cuda`` and ``_ptx``: the pointer-chase kernel as PTX, loaded through libcuda with ctypes;
- ``_triton``: a paged-attention decode kernel reading through a block table.

The KV calibration and the GPU TLB preset fitted from the rows are ``simkit.calibrate.gpu``'s.
"""
