"""Every manager, checker and callback refuses an unknown or invalid option
when it is built, naming it: a misspelt option never silently gives the
default, and nothing fails later at the first write (issue 11)."""

from __future__ import annotations

import pytest

from shoebox import (
    AnyOfRollChecker,
    CompressCallback,
    NeverRollChecker,
    S3UploadCallback,
    SizeRollChecker,
    TimeRollChecker,
    WritingRollManager,
)


@pytest.mark.parametrize(("options", "error", "named"), [
    ({"durability": "bogus"}, ValueError, "durability"),
    ({"buffer_size": -1}, ValueError, "buffer_size"),
    ({"buffer_size": "lots"}, ValueError, "buffer_size"),
    ({"max_record_size": 0}, ValueError, "max_record_size"),
    ({"file_mode": "rw"}, ValueError, "file_mode"),
    ({"roll_checker": "shoebox.DeleteFileCallback"}, TypeError, "roll_checker"),
    ({"archive_callback": "shoebox.NeverRollChecker"}, TypeError, "archive_callback"),
    ({"durabilty": "record"}, TypeError, "durabilty"),
])
def test_a_writing_manager_refuses_a_bad_option_at_construction(tmp_path, options, error,
                                                                named):
    options = {"roll_checker": NeverRollChecker(), **options}
    with pytest.raises(error, match=named):
        WritingRollManager("a.events", directory=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("build", "error", "named"), [
    (lambda: SizeRollChecker(roll_size_mb=1, roll_minutes=5), TypeError, "roll_minutes"),
    (lambda: TimeRollChecker(roll_minute=5), TypeError, "roll_minute"),
    (lambda: SizeRollChecker(roll_size_mb="big"), ValueError, "roll_size_mb"),
    (lambda: AnyOfRollChecker(checkers=["shoebox.DeleteFileCallback"]), TypeError, "checkers"),
])
def test_roll_checkers_refuse_a_bad_option_naming_it(build, error, named):
    with pytest.raises(error, match=named):
        build()


@pytest.mark.parametrize(("build", "error", "named"), [
    (lambda: S3UploadCallback(destination="s3://bucket", after_uplod="keep"), TypeError,
     "after_uplod"),
    (lambda: S3UploadCallback(destination="s3://bucket", after_upload="shred"), ValueError,
     "after_upload"),
    (lambda: CompressCallback(compresion="zstd"), TypeError, "compresion"),
    (lambda: CompressCallback(compression="gzip", level=42), ValueError, "level"),
])
def test_the_shipping_callbacks_refuse_a_bad_option_naming_it(build, error, named):
    with pytest.raises(error, match=named):
        build()
