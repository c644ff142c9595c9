"""baselines/cifar/deterministic.py with --strategy=multi_worker: two worker processes on
localhost (loopback only, every wait bounded) against the single-process two-replica run,
resume after a worker is killed, and a cluster that never assembles."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import cifar_e2e

ARGS = ["--dataset=fashion_mnist", "--depth=10", "--width=1", "--batch_size=32", "--train_epochs=2",
        "--steps_per_loop=2", "--log_interval_s=0", "--seed=7", "--eval_on_ood", "--ood_dataset=mnist"]


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(data_dir, output_dir, extra=(), started=(0, 1)):
    """The `started` workers of a fresh two-worker localhost cluster, one process each."""
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    procs = []
    for index in started:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, str(cifar_e2e.REPO / "baselines/cifar/deterministic.py"), f"--data_dir={data_dir}",
             f"--output_dir={output_dir}", "--strategy=multi_worker", "--peer_timeout_s=60", *ARGS, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cifar_e2e.REPO))
    return procs


def finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [p.returncode for p in procs], outs


def test_two_workers_killed_and_resumed_equal_two_replicas_in_one_process(cifar_data_dir, tmp_path):
    out = tmp_path / "multi"
    procs = start_workers(cifar_data_dir, out)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("ckpt-*")):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "no first checkpoint"
        time.sleep(0.2)
    procs[1].kill()  # A worker dies; the chief must fail, not hang.
    codes, outs = finish(procs, timeout=180)
    assert codes[0] != 0, outs[0][-2000:]
    assert not (out / "run.json").exists()

    codes, outs = finish(start_workers(cifar_data_dir, out))
    assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert all("resumed from" in o for o in outs)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["checkpoints", "curves.jsonl", "flags.json", "metrics.jsonl", "run.json", "summaries"])
    multi = json.loads((out / "run.json").read_text())
    assert multi["num_replicas"] == 2 and len((out / "metrics.jsonl").read_text().splitlines()) == 2

    cifar_e2e.run("deterministic", [*ARGS, "--strategy=mirrored", "--num_cores=2"], cifar_data_dir,
                  tmp_path / "mirrored")
    mirrored = json.loads((tmp_path / "mirrored" / "run.json").read_text())
    assert multi["data_fingerprint"] == mirrored["data_fingerprint"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "ood/mnist_auroc", "train/loss"):
        # Float tolerance: the cross-worker all-reduce sums in another order than the mirrored one.
        assert multi["metrics"][key] == pytest.approx(mirrored["metrics"][key], rel=1e-4, abs=1e-4), key


def test_a_cluster_that_never_assembles_fails_in_bounded_time(cifar_data_dir, tmp_path):
    [alone] = start_workers(cifar_data_dir, tmp_path / "alone", extra=["--peer_timeout_s=3"], started=(0,))
    start = time.time()
    output = alone.communicate(timeout=120)[0]
    assert alone.returncode != 0 and time.time() - start < 120
    assert "the cluster did not assemble within 3 s" in output and "not answering: ['localhost:" in output
    assert not (tmp_path / "alone").exists()
