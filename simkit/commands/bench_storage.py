"""``simkit bench storage``: random-read throughput vs chunk size and parallel reads, and the
flash simulator's read schedule executed on a real file.

    simkit bench storage [--file PATH] [--workdir DIR] [--size 1GiB] [--quick] [--chunks 4k,16k,...]
                         [--threads 1,4,16,32] [--seconds S] [--no-direct] [--seed N]
                         [--out FILE] [--calibration FILE.json] [--plot FILE.png]
                         [--validate] [--validate-policy all] [--validate-tokens N]
                         [--validate-out FILE.csv]

``--validate``: the read schedule the simulator plans for the shipped SmolLM2 activation trace
(sparsity 0.9, low-rank predictor), with 7B-scale rows (d_model 4096, fp16: 8 KiB vectors,
16 KiB bundled), executed on a file laid out as the policy says (bundled or not), against the
cost model's prediction from the calibration just measured.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from simkit.commands._output import add_out_argument, check_out_path, emit, write_frame
from simkit.errors import InputError
from simkit.units import count_type, finite_type

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
TABLE = ("mode", "direct", "chunk_bytes", "threads", "reads", "bytes_per_s", "iops",
         "lat_us_median", "lat_us_p99")


def register(what) -> None:
    p = what.add_parser(
        "storage", help="random-read throughput vs chunk size and threads (O_DIRECT)",
        description="Random preadv reads of 4 KiB..1 MiB chunks with 1..32 threads on a file, "
                    "O_DIRECT with aligned buffers (buffered with the page cache dropped where "
                    "O_DIRECT is refused), plus a sequential 1 MiB ceiling. Table, plot and "
                    "a calibration JSON for simkit flash run --storage.")
    p.add_argument("--file", type=Path, default=None,
                   help="file to read (created with random bytes at --size if missing or of "
                        "another size, and kept); default: a file in a temporary directory "
                        "under --workdir, removed afterwards")
    p.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                   help="where the temporary directory for the default file and the "
                        "--validate file goes (default: the current directory, so that the "
                        "disk measured is this one, not a RAM-backed /tmp); removed afterwards")
    p.add_argument("--size", default=None, help="file size (default 1GiB; quick 256MiB)")
    p.add_argument("--quick", action="store_true", help="5 chunks x 4 thread counts, 0.3 s each")
    p.add_argument("--chunks", help="comma-separated chunk sizes (default 4k..1M, powers of 2)")
    p.add_argument("--threads", help="comma-separated thread counts (default 1,2,4,8,16,32)")
    p.add_argument("--seconds", type=finite_type(0.01, 3600), default=None,
                   help="seconds per point (default 1; quick 0.3)")
    p.add_argument("--no-direct", action="store_true", help="buffered reads (page cache "
                   "dropped with posix_fadvise before every point)")
    p.add_argument("--seed", type=count_type(0), default=0)
    add_out_argument(p)
    p.add_argument("--calibration", type=Path, metavar="FILE.json",
                   help="write the measured calibration (for simkit flash run --storage); "
                        "'host' keeps it as this machine's (simkit flash run --storage host)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="throughput vs chunk figure")
    p.add_argument("--validate", action="store_true",
                   help="also execute the simulator's read schedule on a real file "
                        "(755 MB, in the temporary directory, removed afterwards)")
    p.add_argument("--validate-policy", default="all",
                   help="policy of the validation (default all; 'windowing' is unbundled)")
    p.add_argument("--validate-tokens", type=count_type(1), default=64,
                   help="tokens of the schedule to execute (default 64)")
    p.add_argument("--validate-out", type=Path, metavar="FILE.csv",
                   help="per-token measured vs predicted I/O time")
    p.set_defaults(func=run_storage, _outputs=("calibration",))


def _sizes(text, what):
    from simkit.units import parse_size
    try:
        return tuple(int(parse_size(x.strip())) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None


def run_storage(args: argparse.Namespace) -> int:
    """Every file this command creates (the default --file, the --validate file) lives in a
    fresh temporary directory under --workdir, removed on the way out, errors included."""
    workdir = args.workdir if args.workdir is not None else Path(".")
    if not workdir.is_dir():
        raise InputError(f"--workdir {workdir}: not a directory")
    with tempfile.TemporaryDirectory(prefix="simkit-storage-", dir=workdir) as tmp:
        return _run_storage(args, Path(tmp))


def _run_storage(args: argparse.Namespace, tmp: Path) -> int:
    check_out_path(args.out)
    if args.calibration is not None and str(args.calibration) == "host":
        from simkit.flash.storage import host_calibration_path
        args.calibration = host_calibration_path()
        args.calibration.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_out_path(args.calibration, "--calibration", (".json",))
    check_out_path(args.plot, "--plot", PLOT_SUFFIXES)
    check_out_path(args.validate_out, "--validate-out", (".csv", ".json", ".parquet"))
    from simkit.bench import storage as S
    from simkit.units import parse_size

    chunks = _sizes(args.chunks, "--chunks") if args.chunks else \
        (S.CHUNKS_QUICK if args.quick else S.CHUNKS_FULL)
    if args.threads:
        try:
            threads = tuple(int(x) for x in args.threads.split(","))
        except ValueError:
            raise InputError(f"--threads: not a list of integers: {args.threads!r}") from None
    else:
        threads = S.THREADS_QUICK if args.quick else S.THREADS_FULL
    if not threads or min(threads) < 1:
        raise InputError(f"--threads: must be integers >= 1, got {args.threads!r}")
    size = int(parse_size(args.size)) if args.size else ((256 << 20) if args.quick else 1 << 30)
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 1.0)
    if seconds <= 0:
        raise InputError(f"--seconds: must be > 0, got {seconds}")
    if args.file is not None and not args.file.parent.is_dir():
        raise InputError(f"--file {args.file}: directory {args.file.parent} does not exist")
    file = args.file if args.file is not None else tmp / "simkit-storage-bench.bin"
    if max(chunks) > size:
        raise InputError(f"--size: {size} B is smaller than the largest chunk {max(chunks)} B")
    try:
        df = S.measure_storage(file, size, chunks, threads, seconds,
                               direct=not args.no_direct, seed=args.seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if df.attrs.get("note"):
        print(f"note: {df.attrs['note']}")
    if df.attrs.get("disk_note"):
        print(f"note: {df.attrs['disk_note']}")
    emit(df, args, columns=TABLE)
    if args.calibration is not None:
        S.write_calibration(df, args.calibration)
        print(f"wrote {args.calibration}")
    if args.plot is not None:
        S.plot_storage(df, args.plot)
        print(f"wrote {args.plot}")
    if args.validate:
        from simkit.calibrate.storage import validate_schedule
        from simkit.flash.activations import load_activations
        from simkit.flash.storage import from_dict
        trace = load_activations("smollm2-135m", 0.9)
        model = validation_model()
        cal = from_dict(S.calibration(df), "measured")
        per_tok, summ = validate_schedule(trace, model, args.validate_policy, cal,
                                          tmp / "ffn.bin", tokens=args.validate_tokens,
                                          direct=not args.no_direct)
        print(f"validation ({summ['policy']}, {summ['tokens']} tokens, {summ['reads']} reads "
              f"of {summ['chunk_bytes']} B, {summ['threads']} threads): measured "
              f"{summ['measured_s'] * 1e3:.1f} ms, predicted {summ['predicted_s'] * 1e3:.1f} ms, "
              f"error {summ['error_pct']:+.1f}%")
        if args.validate_out is not None:
            write_frame(per_tok, args.validate_out)
            print(f"wrote {args.validate_out}")
    return 0


def validation_model(matrices: int = 2, d_model: int = 4096):
    """SmolLM2-135M's 30 x 1536 neurons with 7B-scale rows (fp16; d_model 4096: bundled chunks
    of 16 KiB with 2 matrices, 24 KiB with 3, unbundled 8 KiB)."""
    from simkit.flash.models import FlashModel
    name = "smollm2-135m@4096" if (matrices, d_model) == (2, 4096) else \
        f"smollm2-135m@{d_model}x{matrices}"
    return FlashModel(name, 30, d_model, 1536, matrices, 32, 32, 49152, 2, True)
