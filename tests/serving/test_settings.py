"""One typed settings object: every ADREC_* variable read once, checked, named in errors."""

from __future__ import annotations

import pytest

from rec_models.serving.settings import ServingSettings, cpu_count


def test_defaults_and_derived_counts():
    s = ServingSettings.from_env({})
    assert (s.device, s.encoder_variant, s.grpc_port, s.access_log) == ("auto", "", 8001, False)
    assert s.worker_count == cpu_count()  # one worker per core...
    assert s.intra_op_threads == max(1, cpu_count() // s.worker_count)  # ...sharing the cores
    assert not s.thread_spinning
    assert ServingSettings.from_env({"ADREC_WORKERS": "1"}).intra_op_threads == cpu_count()
    assert ServingSettings(workers=1, threads=3).intra_op_threads == 3
    assert s.events.synchronous == "FULL"  # the event log's settings ride along
    assert s.public()["workers"] == s.worker_count and "events" not in s.public()


def test_values_are_parsed_by_type():
    s = ServingSettings.from_env({
        "ADREC_WORKERS": "2", "ADREC_THREADS": "1", "ADREC_THREAD_SPINNING": "on",
        "ADREC_BATCH_MAX_SIZE": "32", "ADREC_BATCH_MAX_QUEUE": "1_024", "ADREC_ACCESS_LOG": "1",
        "ADREC_ENCODER_VARIANT": "opt", "ADREC_GRPC_PORT": "0", "ADREC_DEVICE": "",
        "ADREC_EVENTS_SYNCHRONOUS": "NORMAL", "ADREC_ARTIFACTS": "/elsewhere",
    })  # fmt: skip
    assert (s.workers, s.threads, s.thread_spinning, s.access_log) == (2, 1, True, True)
    assert (s.batch_max_size, s.batch_max_queue, s.encoder_variant) == (32, 1024, "opt")
    assert s.grpc_port == 0 and s.device == "auto"  # empty: the default
    assert s.events.synchronous == "NORMAL"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADREC_WORKER": "2"}, "ADREC_WORKER: unknown variable (valid: ADREC_DEVICE, "),
        ({"ADREC_WORKERS": "two"}, "ADREC_WORKERS='two': expected an integer"),
        ({"ADREC_WORKERS": "-1"}, "ADREC_WORKERS: must be at least 0, got -1"),
        ({"ADREC_BATCH_MAX_SIZE": "0"}, "ADREC_BATCH_MAX_SIZE: must be at least 1"),
        ({"ADREC_ACCESS_LOG": "maybe"}, "ADREC_ACCESS_LOG='maybe': expected a boolean"),
        ({"ADREC_DEVICE": "tpu"}, "ADREC_DEVICE: 'tpu' is not one of auto, cpu, cuda"),
        ({"ADREC_ANN_KIND": "lsh"}, "ADREC_ANN_KIND: 'lsh' is not one of ivf, hnsw"),
        ({"ADREC_GRPC_PORT": "70000"}, "ADREC_GRPC_PORT: 70000 is not a port number"),
        ({"ADREC_BATCH_MAX_QUEUE": "8"}, "ADREC_BATCH_MAX_QUEUE: 8 is below batch_max_size 64"),
        ({"ADREC_EVENTS_SYNCHRONOUS": "OFF"}, "ADREC_EVENTS_SYNCHRONOUS"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ValueError) as err:
        ServingSettings.from_env(env)
    assert message in str(err.value)


def test_nothing_else_in_serving_reads_the_environment():
    import re
    from pathlib import Path

    import rec_models.serving as serving

    folder = Path(serving.__file__).parent
    reads = re.compile(r"""(environ(\.get)?[\[(]|getenv\()\s*["']ADREC_""")
    files = sorted(folder.rglob("*.py"))
    readers = [p.relative_to(folder).as_posix() for p in files if reads.search(p.read_text())]
    assert readers == [], readers  # settings.py reads them by prefix, in from_env
