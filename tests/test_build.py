"""What this installation is: the backends the build promised, and info()."""
import os

import pytest

import crossent


def test_info_names_the_build():
    info = crossent.info()
    assert info["version"] == crossent.__version__
    assert info["backends"] == crossent.backends()
    assert info["default_backend"] == crossent.get_backend() == crossent.backends()[0]
    assert info["num_threads"] == crossent.get_num_threads() >= 1


@pytest.mark.skipif(not os.environ.get("CROSSENT_EXPECT_SANITIZED"), reason="not the sanitizer run")
def test_the_sanitizer_run_tests_an_instrumented_build():
    # make sanitize sets CROSSENT_EXPECT_SANITIZED: a green run must not come
    # from an uninstrumented build that slipped in.
    for name in crossent.backends():
        if name != "numpy":
            flags = crossent._backends.module(name).info()["build_flags"]
            assert "-fsanitize=address,undefined" in flags, (name, flags)
