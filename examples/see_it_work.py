"""See shoebox do its main job, on local defaults (no cloud account, no server).

    python examples/see_it_work.py [--records N] [--keep]

1. A service logs N records through ``shoebox_logging.ShoeboxHandler``
   (configured with ``logging.config.dictConfig``); its archives roll
   every 256 KiB.
2. ``shoebox-sidecar WATCH_DIR --dest DIR --once`` compresses each closed
   archive and ships it to a local directory standing in for a bucket,
   deleting each local archive once its copy is confirmed.
3. The shipped copies are read back record for record, and a summary of
   what was shipped is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import shutil
import subprocess
import sys
import tempfile

import shoebox


def log_like_a_service(archive_dir: str, records: int) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "archive": {
                "class": "shoebox_logging.ShoeboxHandler",
                "directory": archive_dir,
                "filename_template": "demo_%Y%m%d_%H%M%S_%f_{host}_{pid}.events",
                "roll_size_mb": 0.25,
                "roll_minutes": 15,
                "metadata_fields": ["request_id", "tenant"],
            },
        },
        "loggers": {"demo": {"level": "INFO", "handlers": ["archive"], "propagate": False}},
    })
    log = logging.getLogger("demo.orders")
    for i in range(records):
        extra = {"request_id": f"req-{i:06d}", "tenant": ("acme", "globex", "initech")[i % 3],
                 "items": i % 7 + 1}
        if i % 500 == 499:
            try:
                raise ValueError(f"order {i} has no address")
            except ValueError:
                log.exception("order %d failed", i, extra=extra)
        else:
            log.info("order %d placed with %d items", i, extra["items"], extra=extra)
    logging.shutdown()  # finalizes the active archive, as at interpreter exit


def run_sidecar(archive_dir: str, shipped_dir: str) -> list[dict[str, object]]:
    """Run the sidecar once; return its ``shipped`` log lines."""
    result = subprocess.run(
        [sys.executable, "-m", "shoebox_sidecar", archive_dir, "--dest", shipped_dir,
         "--once", "--verify"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"shoebox-sidecar failed ({result.returncode}):\n{result.stderr}")
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "shipped"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="records to log (5000)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the demo directory to look at afterwards")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="shoebox-demo-")
    archive_dir = os.path.join(root, "archive")
    shipped_dir = os.path.join(root, "shipped")
    try:
        print(f"1. logging {args.records} records through ShoeboxHandler into {archive_dir}")
        log_like_a_service(archive_dir, args.records)
        closed = sorted(os.listdir(archive_dir))
        written = sum(1 for _ in shoebox.ReadingRollManager("*.events", archive_dir))
        print(f"   {len(closed)} closed archives, {written} records, "
              f"{sum(os.path.getsize(os.path.join(archive_dir, f)) for f in closed):,} bytes")

        print(f"2. shoebox-sidecar {archive_dir} --dest {shipped_dir} --once --verify")
        shipped = run_sidecar(archive_dir, shipped_dir)
        print(f"   {'shipped as':<58} {'records':>7} {'bytes':>9} {'gzip':>8} {'ratio':>6}")
        for line in sorted(shipped, key=lambda line: str(line["key"])):
            print(f"   {line['key']!s:<58} {line['records']:>7} {line['bytes_in']:>9,} "
                  f"{line['bytes_out']:>8,} {line['ratio']:>5.1f}x")
        bytes_in = sum(int(str(line["bytes_in"])) for line in shipped)
        bytes_out = sum(int(str(line["bytes_out"])) for line in shipped)
        print(f"   {len(shipped)} archives, {bytes_in:,} -> {bytes_out:,} bytes; "
              f"{len(os.listdir(archive_dir))} left in {archive_dir}")

        print("3. reading the shipped copies back")
        copies = sorted(os.path.join(folder, name) for folder, _, names in os.walk(shipped_dir)
                        for name in names)
        records = []
        for path in copies:
            with shoebox.open_archive(path) as archive:
                records.extend(archive)
        print(f"   {len(records)} records in {len(copies)} files; the first one:")
        metadata, payload = records[0]
        print(f"   metadata {json.dumps(metadata)}")
        print(f"   payload  {payload}")
        if len(records) != written:
            sys.exit(f"{written} records written but {len(records)} shipped")
        print(f"all {written} records shipped and read back.")
    finally:
        if args.keep:
            print(f"kept {root}; look inside with: shoebox stats {shipped_dir} --top tenant")
        else:
            shutil.rmtree(root)
            print("(run with --keep to look at the files afterwards)")


if __name__ == "__main__":
    main()
