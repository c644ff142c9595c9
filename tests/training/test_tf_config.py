"""TF_CONFIG for --strategy=multi_worker: parsed and checked before anything starts."""
import json

import pytest

from uncertainty_baselines.training import distribution, flags

CLUSTER = {"worker": ["localhost:2001", "localhost:2002"]}


def config(cluster=CLUSTER, task_type="worker", index=0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize("cluster,task_type,index,chief", [
    (CLUSTER, "worker", 0, True), (CLUSTER, "worker", 1, False),
    ({"chief": ["h0:1"], "worker": ["h1:1"]}, "chief", 0, True),
    ({"chief": ["h0:1"], "worker": ["h1:1"]}, "worker", 0, False)])
def test_the_chief_is_the_chief_or_else_worker_0(cluster, task_type, index, chief):
    task = distribution.read_tf_config(config(cluster, task_type, index))
    assert task.is_chief == chief
    assert task.address not in task.peers and len(task.peers) == sum(map(len, cluster.values())) - 1


@pytest.mark.parametrize("text,message", [
    ("", "needs TF_CONFIG"),
    ("{not json", "does not parse"),
    (json.dumps({"cluster": CLUSTER}), "does not parse"),
    (config(index=2), "task worker:2 is not in the cluster"),
    (config(task_type="ps"), "task ps:0 is not in the cluster"),
    (config({"worker": ["localhost:2001", "localhost:2001"]}), "names \\['localhost:2001'\\] more than once"),
    (config({"chief": ["h:1"], "worker": ["h:1", "h:2"]}), "more than once"),
    (config({"worker": ["localhost"]}), "lists of 'host:port'"),
])
def test_bad_tf_config_refused(text, message):
    with pytest.raises(distribution.ClusterError, match=message):
        distribution.read_tf_config(text)


def test_bad_tf_config_is_a_flag_error_and_the_replicas_count_the_workers(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", config())
    assert flags.num_replicas("multi_worker", None) == 2
    monkeypatch.setenv("TF_CONFIG", "{")
    assert flags.num_replicas("multi_worker", None) is None
