"""Many threads logging through one ShoeboxHandler at once: every record
lands whole, once, with its own metadata and payload."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import pytest
from _logging_support import attach, open_files, read_records, restore_logging  # noqa: F401

from shoebox_logging import ShoeboxHandler

pytestmark = pytest.mark.usefixtures("restore_logging")

THREADS = 4
PER_THREAD = 2_500


@pytest.mark.parametrize("queue_size", [0, 256], ids=["blocking", "non-blocking"])
def test_four_threads_logging_10000_records_all_read_back(tmp_path: Path,
                                                          queue_size: int) -> None:
    handler = ShoeboxHandler(directory=tmp_path, roll_size_mb=0.5, queue_size=queue_size,
                             metadata_fields=["worker", "seq"])
    logger = attach(handler)
    start = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        start.wait()
        for seq in range(PER_THREAD):
            logger.info("worker %d record %d", worker, seq,
                        extra={"worker": worker, "seq": seq, "payload_only": [worker, seq]})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()

    assert not open_files(tmp_path)
    assert len(list(tmp_path.iterdir())) > 1, "0.5 MiB archives must have rolled meanwhile"
    seen: dict[int, list[int]] = defaultdict(list)
    for metadata, payload in read_records(tmp_path):
        worker, seq = int(metadata["worker"]), int(metadata["seq"])
        assert payload["message"] == f"worker {worker} record {seq}"
        assert (payload["worker"], payload["seq"]) == (worker, seq)
        assert payload["payload_only"] == [worker, seq]
        assert payload["thread_name"] == threads[worker].name
        seen[worker].append(seq)
    # Every record once, and each thread's records in the order it logged them.
    assert {worker: seqs for worker, seqs in seen.items()} == {
        worker: list(range(PER_THREAD)) for worker in range(THREADS)}
    assert handler.dropped == handler.failed == 0
