"""simkit.sweep: grid expansion, resumable parquet results, failures recorded, and a dask
LocalCluster of 2 workers surviving a worker killed mid-sweep (every result present once)."""
import os
import signal

import pytest

from simkit.cli import main
from simkit.sweep import Grid, done_ids, load_results, run_sweep

GRID = {"name": "t", "simulator": "cache", "traces": ["gups", "bfs"], "max_records": 20000,
        "base": {"preset": "victima-baseline"},
        "grid": {"L2.size_bytes": ["256KiB", "1MiB"], "L2.policy": ["lru", "srrip-fp"]}}


def test_grid_expands_to_the_product_and_ids_are_stable():
    g = Grid.from_dict(GRID)
    tasks = g.tasks()
    assert len(tasks) == 2 * 2 * 2 and len({t.id for t in tasks}) == 8
    assert [t.id for t in Grid.from_dict(GRID).tasks()] == [t.id for t in tasks]
    assert dict(tasks[0].params)["preset"] == "victima-baseline"


@pytest.mark.parametrize("change, msg", [
    ({"simulator": "gpu"}, "simulator: expected one of cache, tlb, kv"),
    ({"traces": []}, "traces: expected a non-empty list"),
    ({"colour": 1}, "unknown key 'colour'"),
    ({"grid": {"L9.size_bytes": ["1MiB"]}}, "no cache level 'L9'"),
    ({"grid": {"L2.size_bytes": ["3000"]}}, "size_bytes"),
    ({"max_records": -1}, "max_records: expected a non-negative integer"),
])
def test_bad_grids_fail_before_any_work(tmp_path, change, msg):
    with pytest.raises(Exception, match=msg):
        run_sweep(Grid.from_dict({**GRID, **change}), tmp_path / "o", workers=0)
    assert not (tmp_path / "o" / "results").exists()


def test_inline_partial_run_then_resume_runs_only_the_rest(tmp_path):
    g = Grid.from_dict(GRID)
    first = run_sweep(g, tmp_path, workers=0, limit=3)
    assert (first.done, first.skipped) == (3, 0)
    second = run_sweep(g, tmp_path, workers=0)
    assert (second.skipped, second.done, second.failed) == (3, 5, 0)
    df = load_results(tmp_path)
    assert df.task_id.nunique() == 8 and len(df) == 8 * 3          # 3 cache levels a task
    one = df[df.grid_l2_size_bytes == "256KiB"]
    assert set(one.level) == {"L1D", "L2", "LLC"}
    # the same numbers as running the configuration directly
    from simkit.cache import Hierarchy, HierarchyConfig
    from simkit.trace.catalog import find_trace
    cfg = HierarchyConfig.preset("victima-baseline")
    import dataclasses
    lv = list(cfg.levels)
    lv[1] = dataclasses.replace(lv[1], size_bytes=1 << 20, policy="lru")
    direct = Hierarchy(dataclasses.replace(cfg, levels=tuple(lv))).run(
        find_trace("bfs"), max_records=20000)
    row = df[(df.grid_l2_size_bytes == "1MiB") & (df.grid_l2_policy == "lru")
             & (df.sweep_trace == "bfs") & (df.level == "L2")].iloc[0]
    assert row.misses == direct.levels[1].misses


def test_failing_task_is_recorded_and_the_others_finish(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text('name = "f"\nsimulator = "cache"\ntraces = ["gups", "no-such-trace"]\n'
                    'max_records = 5000\n[grid]\n"L1.size_bytes" = ["16KiB", "32KiB"]\n')
    rc = main(["sweep", str(grid), "--workers", "0", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 1 and "2 run, 2 failed" in out and "no-such-trace" in out
    assert len(list((tmp_path / "o" / "failed").glob("*.json"))) == 2
    assert load_results(tmp_path / "o").sweep_trace.unique().tolist() == ["gups"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simkit: error: ") and "no such file" in err and err.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    assert main(["sweep", str(bad)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_local_cluster_survives_a_killed_worker_and_a_resume(tmp_path):
    pytest.importorskip("distributed", reason="dask.distributed not installed (extra 'dist')")
    g = Grid.from_dict({**GRID, "traces": ["gups", "bfs", "embedding"]})
    killed = []

    def kill_one(n, result, client):
        if n == 2 and not killed:                    # mid-sweep: SIGKILL one worker process
            pids = client.run(os.getpid)
            addr, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(addr)

    rep = run_sweep(g, tmp_path, workers=2, on_result=kill_one, limit=10)
    assert killed and rep.done + rep.failed == 10
    rep2 = run_sweep(g, tmp_path, workers=2)              # resume: the rest, plus any lost
    df = load_results(tmp_path)
    ids = {t.id for t in g.tasks()}
    assert done_ids(tmp_path) == ids                        # every task has its result ...
    assert df.groupby("task_id").size().eq(3).all()         # ... exactly once (3 levels each)
    assert rep2.skipped == 12 - (rep2.done + rep2.failed) and rep2.failed == 0


def test_local_cluster_listens_on_loopback_only_without_dashboard():
    pytest.importorskip("distributed")
    from simkit.sweep import local_cluster

    with local_cluster(1) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:"), cluster.scheduler_address
        # distributed always starts its small HTTP server (health, metrics); it must listen
        # on the loopback interface only (the bokeh dashboard is not asked for)
        http = cluster.scheduler.http_server
        hosts = {sock.getsockname()[0] for sock in http._sockets.values()}
        assert hosts == {"127.0.0.1"}, hosts
        for w in cluster.workers.values():
            assert w.address.startswith("tcp://127.0.0.1:"), w.address


def test_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    from simkit.cli import main

    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\nsimulator = "cache"\ntraces = ["gups"]\nmax_records = 1000\n'
                    '[base]\npreset = "zen3"\n[grid]\n"L1.ways" = [4]\n')
    rc = main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--scheduler",
               "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("simkit: error: --scheduler"), err
