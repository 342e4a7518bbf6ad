"""audio_control=shuffle plans over all of a task's documents, whatever the number of processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import textwrap

import numpy as np
import pytest
from lm_eval.api.instance import Instance

from lm_eval_audio.trust.controls import AudioControl

N_DOCS = 9


def _requests(doc_ids, task: str = "probe") -> list[Instance]:
    """Two choices per document; each document's clip is a constant array naming its doc id."""
    return [Instance("loglikelihood", {}, ("Q:", choice, {"audio": [{"array": np.full(4, d, np.float32),
                                                                     "sampling_rate": 16000}]}),
                     idx=k, metadata=(task, d, 1))
            for d in doc_ids for k, choice in enumerate((" A", " B"))]


def _shard(rank: int, world_size: int) -> list[int]:
    # lm-eval's split: process `rank` takes documents rank, rank + world_size, ...
    return list(range(N_DOCS))[rank::world_size]


def _heard(requests: list[Instance]) -> dict[int, int]:
    """doc id -> the doc id whose clip its requests now carry."""
    return {r.doc_id: int(r.args[2]["audio"][0]["array"][0]) for r in requests}


class _Ranks:
    """`world_size` processes simulated by threads; `gather` is all_gather_object's contract."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=10)
        self.slots: list = [None] * world_size
        self.calls = [0] * world_size

    def gather_for(self, rank: int):
        def gather(obj):
            self.calls[rank] += 1
            self.slots[rank] = obj
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read them all
            return out

        return gather

    def run(self, step) -> list:
        results: list = [None] * self.world_size
        errors: list = []

        def worker(rank: int) -> None:
            try:
                results[rank] = step(rank)
            except Exception as e:  # surfaced below, on the test's thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(r,)) for r in range(self.world_size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


def test_shuffle_mapping_is_the_same_on_one_and_two_processes():
    single = AudioControl("shuffle", seed=7)
    single_reqs = _requests(range(N_DOCS))
    single.prepare(single_reqs)
    one = single.donors("probe")
    assert _heard(single_reqs) == one

    ranks = _Ranks(2)
    controls = [AudioControl("shuffle", seed=7) for _ in range(2)]
    shards = [_requests(_shard(r, 2)) for r in range(2)]
    ranks.run(lambda r: controls[r].prepare(shards[r], ranks.gather_for(r)))
    heard = {**_heard(shards[0]), **_heard(shards[1])}
    assert heard == one  # each document hears the same donor as on one process
    assert all(c.donors("probe") == one for c in controls)
    # Donors cross the shards: a document on process 0 hears a clip that only process 1 held.
    assert any(one[d] % 2 != d % 2 for d in range(N_DOCS))
    assert ranks.calls == [1, 1]


def test_leftover_requests_gather_nothing():
    # With --use_cache a process whose requests were all cached makes no second call: the
    # other process's second call (its uncached requests) must not wait for it.
    ranks = _Ranks(2)
    controls = [AudioControl("shuffle", seed=7) for _ in range(2)]
    ranks.run(lambda r: controls[r].prepare(_requests(_shard(r, 2)), ranks.gather_for(r)))
    leftover = _requests(_shard(0, 2)[:2])
    controls[0].prepare(leftover, ranks.gather_for(0))  # alone: a gather would time out
    assert ranks.calls == [1, 1]
    assert _heard(leftover) == {d: controls[1].donors("probe")[d] for d in _shard(0, 2)[:2]}


def test_a_new_task_is_gathered_on_every_process():
    ranks = _Ranks(2)
    controls = [AudioControl("shuffle", seed=7) for _ in range(2)]
    ranks.run(lambda r: controls[r].prepare(_requests(_shard(r, 2)), ranks.gather_for(r)))
    ranks.run(lambda r: controls[r].prepare(_requests(_shard(r, 2), task="other"), ranks.gather_for(r)))
    assert ranks.calls == [2, 2]
    assert controls[0].donors("other") == controls[1].donors("other")
    assert sorted(controls[0].donors("other")) == list(range(N_DOCS))


_RANK_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch.distributed as dist
    from lm_eval_audio.trust.controls import AudioControl, gather_ranks

    class Request:  # what the control reads of an lm-eval Instance (importing lm-eval costs seconds)
        def __init__(self, doc_id):
            self.task_name, self.doc_id = "probe", doc_id
            self.arguments = ("Q:", " A", {"audio": [{"array": np.full(4, doc_id, np.float32), "sampling_rate": 16000}]})

        @property
        def args(self):
            return self.arguments

    rank, world, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    reqs = [Request(d) for d in range(%d)[rank::world]]
    control = AudioControl("shuffle", seed=7)
    control.prepare(reqs, gather_ranks())
    heard = {r.doc_id: int(r.args[2]["audio"][0]["array"][0]) for r in reqs}
    json.dump(heard, open(out, "w"))
    if world > 1:
        dist.destroy_process_group()
""" % N_DOCS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torch_distributed_ranks_plan_as_one_process(tmp_path):
    # Two real processes joined by a gloo process group, as `accelerate launch` makes them.
    pytest.importorskip("torch.distributed")
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}

    def run(world: int) -> dict[int, int]:
        procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), str(tmp_path / f"{world}_{r}.json")],
                                  env=env, stderr=subprocess.PIPE, text=True) for r in range(world)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        heard: dict[int, int] = {}
        for r in range(world):
            heard.update({int(k): v for k, v in json.loads((tmp_path / f"{world}_{r}.json").read_text()).items()})
        return heard

    single = AudioControl("shuffle", seed=7)
    single.prepare(_requests(range(N_DOCS)))
    one = single.donors("probe")
    assert sorted(one) == list(range(N_DOCS)) and all(one[d] != d for d in one)
    assert run(2) == one
