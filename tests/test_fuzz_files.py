"""Malformed ``.npy`` / ``.npz`` files: every one gives a correct result or
one clear error, through ``crossent.evaluate`` and ``crossent eval``.

The fuzzer (hypothesis) writes files from strategies over the header's
fields (version, header length, ``descr``, ``fortran_order``, ``shape``,
keys, raw text) and the payload's length, and mutates valid files byte by
byte (truncations, flipped bytes, overwritten and swapped ranges, swapped
header fields, patched zip directory fields) -- ``.npy`` files and ``.npz``
members, stored and deflated.  Each file then takes a role in a call
(predictions or targets of an elementwise or a multiclass loss) and the
outcome must be one of:

* a result whose bits equal ``crossent.evaluate`` on the arrays NumPy loads
  from the same bytes (``np.load``; for a stored ``.npz`` member, without the
  zip CRC, which crossent does not read: docs/guarantees.md);
* a ``ValueError`` / ``TypeError`` / ``OSError`` naming the operand (PRED,
  TARGET) and, when NumPy cannot load the file either, the file's path;

and, on the command line (``crossent.__main__.main``, in-process with
captured streams; a few cases in real subprocesses), status 0 printing that
result, or status 1 with exactly one line on stderr.  Anything else fails:
another exception (a traceback), more than ``CASE_SECONDS`` for a case, or a
traced memory peak (tracemalloc) above the chunk budget.

The default suite runs a bounded number of examples (``DEFAULT_EXAMPLES``
per test); ``pytest -m slow tests/test_fuzz_files.py`` runs the campaign
(``CAMPAIGN_EXAMPLES`` per test).  Run with ``--hypothesis-show-statistics``
to see the number of cases and their outcomes.
"""
import contextlib
import io
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import crossent
from crossent import __main__ as cli
from crossent import _eval

DEFAULT_EXAMPLES = 40
# examples per test of the slow campaign; CROSSENT_FUZZ_CAMPAIGN=N runs N
CAMPAIGN_EXAMPLES = int(os.environ.get("CROSSENT_FUZZ_CAMPAIGN", 1000))
CASE_SECONDS = 20
# The memory any case may trace: one chunk of predictions.  The fuzzed files
# are at most a few hundred kilobytes, so a larger peak is memory spent on
# what a header or a zip directory claims.
MEMORY_BUDGET = _eval.DEFAULT_CHUNK_BYTES
BACKENDS = crossent.backends()

FUZZ = settings(max_examples=DEFAULT_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CAMPAIGN = settings(FUZZ, max_examples=CAMPAIGN_EXAMPLES)

# dtypes the reader takes (either byte order), and dtypes it refuses
GOOD_DESCRS = ["<f8", ">f8", "<f4", ">f4", "<f2", ">f2", "|i1", "<i2", ">i4", "<i8", "|u1",
               "<u2", ">u4", "<u8", "|b1"]
BAD_DESCRS = ["|O", "<c8", "<c16", "|S5", "<U3", "<M8[s]", "<m8[ns]", "|V8", "<f16",
              "(2,)<f8", "<f8,<i4", "[('a', '<f8')]", "float64x", "", 5, None,
              [("a", "<f8")], ("<f8", (2,))]


# ================================================================ writing files

def npy_bytes(header_text, payload, version=(1, 0), length_delta=0, pad=True):
    """The bytes of a .npy: magic, version, header length (+ ``length_delta``,
    a lie), header text (padded as NumPy pads it), payload."""
    text = header_text.encode("utf-8" if version == (3, 0) else "latin-1", "replace")
    length_size = 2 if version == (1, 0) else 4
    if pad:
        text += b" " * (-(6 + 2 + length_size + len(text) + 1) % 64) + b"\n"
    length = max(0, min(len(text) + length_delta, 2 ** (8 * length_size) - 1))
    return (b"\x93NUMPY" + bytes(version) + length.to_bytes(length_size, "little")
            + text + payload)


def array_bytes(array, version=None):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


def npz_bytes(members, compression):
    """A zip of ``{key: .npy bytes}`` as np.savez (stored) or
    np.savez_compressed (deflated) writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for key, data in members.items():
            archive.writestr(key + ".npy", data)
    return buffer.getvalue()


def central_entries(data):
    """Offsets of the zip central directory entries in ``data``."""
    return [m.start() for m in re.finditer(re.escape(b"PK\x01\x02"), data)]


# Fields of a central directory entry: name -> (offset in the entry, struct format)
CENTRAL_FIELDS = {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"),
                  "compressed size": (20, "<I"), "file size": (24, "<I"),
                  "external attributes": (38, "<I"), "local header offset": (42, "<I")}


def patch_central(data, entry, field, value):
    offset, fmt = CENTRAL_FIELDS[field]
    at = entry + offset
    value &= (1 << (8 * struct.calcsize(fmt))) - 1
    return data[:at] + struct.pack(fmt, value) + data[at + struct.calcsize(fmt):]


# ================================================================ strategies

def valid_values(dtype, shape, rng):
    """Values of ``dtype``: normal reals, or class indices in [0, 3), or 0/1."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.normal(scale=3.0, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.integers(0, 3, size=shape).astype(dtype)


small_shapes = st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple) | st.tuples(
    st.integers(60, 140), st.integers(1, 5))          # enough rows for several chunks


@st.composite
def valid_arrays(draw):
    shape = draw(small_shapes, label="shape")
    dtype = draw(st.sampled_from(GOOD_DESCRS), label="descr")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    array = valid_values(dtype, shape, rng)
    return np.asfortranarray(array) if draw(st.booleans(), label="fortran") else array


shape_entries = st.one_of(st.integers(0, 6), st.integers(0, 6), st.integers(-3, -1),
                          st.sampled_from([True, False, 2.0, None, "3", 2**31, 2**62, 2**70]))
shape_values = st.one_of(
    st.lists(shape_entries, max_size=4).map(tuple),
    st.lists(st.integers(0, 6), max_size=3).map(tuple),
    st.sampled_from([[3, 2], 3, None, "(3,)", (2,) * 65, (2**40, 2**40), (0, 2**63 - 1)]))
raw_headers = st.sampled_from([
    "", "{}", "[]", "{'descr': '<f8'}", "__import__('os').system('true')",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)",
    "{'descr': '<f8', 'fortran_order': False, 'shape': " + "(" * 300 + ")" * 300 + "}",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 5000 + ",)}",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (1e400,)}",
    "{'descr': '\xe9', 'fortran_order': False, 'shape': ()}",
]) | st.text(max_size=40)


@st.composite
def npy_from_fields(draw):
    """(.npy bytes, the shape a companion operand should take)."""
    descr = draw(st.sampled_from(GOOD_DESCRS) | st.sampled_from(BAD_DESCRS), label="descr")
    fortran = draw(st.sampled_from([False, True]) | st.sampled_from([0, 1, "no", None]),
                   label="fortran_order")
    shape = draw(st.lists(st.integers(0, 6), max_size=3).map(tuple) | shape_values,
                 label="shape")
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    if draw(st.booleans(), label="raw header"):
        text = draw(raw_headers, label="raw text")
    else:
        text = repr(header)
    version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0)])
                   | st.sampled_from([(0, 0), (1, 1), (4, 0), (255, 255)]), label="version")
    length_delta = draw(st.sampled_from([0, 0, 0, -1, -20, 3, 100, 70000]), label="length lie")
    sane = sane_shape(shape)
    try:
        dtype = np.dtype(descr) if isinstance(descr, str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    if sane is not None and dtype is not None and dtype.kind in "fiub" and dtype.itemsize <= 8:
        payload = valid_values(dtype, sane, rng).tobytes(order="F" if fortran is True else "C")
    else:
        payload = rng.bytes(draw(st.integers(0, 256), label="payload bytes"))
    cut = draw(st.sampled_from([0, 0, 0, -1, -8, 5, "all"]), label="payload delta")
    payload = (b"" if cut == "all" else payload[:len(payload) + cut] if cut < 0
               else payload + bytes(cut))
    data = npy_bytes(text, payload, version, length_delta, pad=draw(st.booleans(), label="pad"))
    return data, sane if sane is not None else (4,)


def sane_shape(shape):
    """``shape`` when it is one an array may have here (small), else None."""
    if (isinstance(shape, tuple) and len(shape) <= 8
            and all(type(n) is int and 0 <= n <= 200 for n in shape)
            and np.prod(shape, dtype=np.int64) <= 10**5):
        return shape
    return None


def mutate(draw, data, what):
    """``data`` with 1-3 byte-level mutations, positions biased to the start
    (the headers) and spread over the whole."""
    for _ in range(draw(st.integers(1, 3), label=f"{what} mutations")):
        if not data:
            break
        anywhere = st.integers(0, len(data) - 1)
        position = st.integers(0, min(len(data) - 1, 127)) | anywhere | anywhere
        kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "swap", "insert"]),
                    label=f"{what} mutation")
        event(f"{what} mutation: {kind}")
        at = draw(position, label="at")
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8), label="bytes")
            data = data[:at] + chunk + data[at + len(chunk):]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8), label="bytes") + data[at:]
        else:
            other = draw(position, label="other")
            size = draw(st.integers(1, 8), label="size")
            a, b = sorted((at, other))
            if b - a >= size:
                data = (data[:a] + data[b:b + size] + data[a + size:b] + data[a:a + size]
                        + data[b + size:])
    return data


def swap_header_fields(draw, data):
    """The values of two of the header's fields exchanged in the text."""
    match = re.search(rb"'descr': (.*?), 'fortran_order': (.*?), 'shape': (\(.*?\)),", data)
    if match is None:
        return data
    first, second = draw(st.sampled_from([(1, 2), (1, 3), (2, 3)]), label="swapped fields")
    event("header fields swapped")
    values = {1: match.group(1), 2: match.group(2), 3: match.group(3)}
    values[first], values[second] = values[second], values[first]
    text = b"'descr': %s, 'fortran_order': %s, 'shape': %s," % (values[1], values[2], values[3])
    return data[:match.start()] + text + data[match.end():]


@st.composite
def mutated_npy(draw):
    array = draw(valid_arrays())
    data = array_bytes(array, draw(st.sampled_from([None, (1, 0), (2, 0), (3, 0)]),
                                   label="version"))
    if draw(st.booleans(), label="swap fields"):
        data = swap_header_fields(draw, data)
    return mutate(draw, data, "npy"), array.shape


@st.composite
def mutated_npz(draw):
    """(.npz bytes, the shape a companion should take); the fuzzed member is 'a'."""
    array = draw(valid_arrays())
    member = array_bytes(array)
    if draw(st.booleans(), label="swap fields"):
        member = swap_header_fields(draw, member)
    if draw(st.booleans(), label="mutate member"):
        member = mutate(draw, member, "member")
    members = {"a": member}
    if draw(st.booleans(), label="second member"):
        members["b"] = array_bytes(np.arange(5.0))
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
                       label="compression")
    event(f"npz {'deflated' if compression else 'stored'}")
    data = npz_bytes(members, compression)
    if draw(st.booleans(), label="patch directory"):
        entries = central_entries(data)
        if entries:
            field = draw(st.sampled_from(sorted(CENTRAL_FIELDS)), label="field")
            event(f"zip field patched: {field}")
            offset, fmt = CENTRAL_FIELDS[field]
            old = struct.unpack_from(fmt, data, entries[0] + offset)[0]
            value = draw(st.sampled_from([
                0, 1, old + 1, old - 1, old * 2, old * 1000 + 7, 2**31, 2**32 - 1,
                8, 12, 14, 99,                                  # methods: deflate64, bzip2, lzma
                (stat.S_IFDIR | 0o755) << 16, (stat.S_IFLNK | 0o777) << 16, 0x10,
                (stat.S_IFREG | 0o644) << 16, old | 0x1, old | 0x8]), label="value")
            data = patch_central(data, entries[0], field, value)
    if draw(st.booleans(), label="mutate archive"):
        data = mutate(draw, data, "archive")
    return data, array.shape


# ================================================================ running a case

class CaseTimeout(Exception):
    """A case ran longer than CASE_SECONDS: a hang."""


@contextlib.contextmanager
def time_limit(seconds):
    def expire(signum, frame):
        raise CaseTimeout(f"a case took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def traced_peak(limit):
    """Fails when the traced memory peak inside the block exceeds ``limit``."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"traced memory peak {peak} bytes > budget {limit}"


def outcome(call):
    """("ok", value) or ("error", exception) for the documented exceptions."""
    try:
        return "ok", call()
    except (ValueError, TypeError, OSError) as exc:
        return "error", exc


def numpy_load(path):
    """What NumPy reads from ``path`` ("x.npy" or "x.npz:a"), or None: the
    oracle.  A stored .npz member is read without its CRC, as crossent does."""
    try:
        if path.endswith(":a"):
            with zipfile.ZipFile(path[:-2]) as archive, archive.open("a.npy") as member:
                member._expected_crc = None
                return np.lib.format.read_array(member, allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except Exception:  # noqa: BLE001 -- anything NumPy or zipfile refuses
        return None


# Roles a fuzzed file takes: (loss, the fuzzed operand, the companion's shape
# from the fuzzed file's intended shape, the companion's values)
ROLES = {
    "mse pred": ("mse_loss", "pred", lambda shape: shape, "real"),
    "cross_entropy pred": ("cross_entropy", "pred", lambda shape: shape[:-1], "labels"),
    "cross_entropy target": ("cross_entropy", "target", lambda shape: shape + (3,), "real"),
    "bce-with-logits both": ("binary_cross_entropy_with_logits", "both", None, None),
}


def companion(shape, values, rng):
    return rng.integers(0, 3, size=shape) if values == "labels" else rng.normal(size=shape)


def run_case(directory, data, suffix, intended_shape, draw):
    """Write ``data``, draw a role, and check evaluate and the CLI on it."""
    fuzzed = directory / f"fuzzed{suffix}"
    fuzzed.write_bytes(data)
    spec = str(fuzzed) + (":a" if suffix == ".npz" else "")
    role = draw(st.sampled_from(sorted(ROLES)), label="role")
    loss, which, companion_shape, values = ROLES[role]
    event(f"role: {role}")
    rng = np.random.default_rng(0)
    if which == "both":
        pred_spec = target_spec = spec
    else:
        other = directory / "companion.npy"
        shape = companion_shape(intended_shape)
        np.save(other, companion(shape, values, rng))
        pred_spec, target_spec = (spec, str(other)) if which == "pred" else (str(other), spec)
    # One thread mostly: starting the kernels' threads costs more than these
    # tiny cases, and results are the same bits for any count.
    options = {"backend": draw(st.sampled_from(BACKENDS), label="backend"),
               "chunk_rows": draw(st.sampled_from([None, 1, 64]), label="chunk_rows"),
               "n_threads": draw(st.sampled_from([1, 1, 2]), label="n_threads")}
    check_evaluate(loss, pred_spec, target_spec, spec, options)


def check_evaluate(loss, pred_spec, target_spec, fuzzed_spec, options):
    with time_limit(CASE_SECONDS), traced_peak(MEMORY_BUDGET):
        got = outcome(lambda: crossent.evaluate(loss, pred_spec, target_spec, **options))
    loaded = {spec: numpy_load(spec) for spec in (pred_spec, target_spec)}
    numpy_reads = all(array is not None for array in loaded.values())
    expected = None
    if numpy_reads:
        expected = outcome(lambda: crossent.evaluate(loss, loaded[pred_spec], loaded[target_spec],
                                                     **options))
    event(f"evaluate: {got[0]}; numpy reads the file: {numpy_reads}")
    if got[0] == "ok":
        assert numpy_reads, f"crossent read {fuzzed_spec}, which NumPy cannot read"
        assert expected[0] == "ok", f"crossent gave {got[1]!r}; in memory: {expected[1]!r}"
        assert got[1].dtype == expected[1].dtype
        assert np.array_equal(got[1], expected[1], equal_nan=True), (got[1], expected[1])
    else:
        message = str(got[1])
        assert "\n" not in message.strip(), message
        # Errors about the values NumPy reads (a label out of range, a
        # shape that does not fit) name the operand as the command line
        # does; errors about the file itself name its path too.
        assert "PRED" in message or "TARGET" in message, message
        if not numpy_reads:
            assert fuzzed_spec.split(":")[0] in message, \
                f"the error does not name the file: {message}"
        event(f"error: {type(got[1]).__name__}")
    check_command_line(loss, pred_spec, target_spec, options, got)


def check_command_line(loss, pred_spec, target_spec, options, evaluated):
    argv = ["eval", loss, pred_spec, target_spec, "--backend", options["backend"],
            "--threads", str(options["n_threads"])]
    if options["chunk_rows"] is not None:
        argv += ["--chunk-rows", str(options["chunk_rows"])]
    out, err = io.StringIO(), io.StringIO()
    with time_limit(CASE_SECONDS), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        status = cli.main(argv)
    out, err = out.getvalue(), err.getvalue()
    if evaluated[0] == "ok":
        assert (status, err) == (0, ""), (status, err)
        # the table's first line: "LOSS (REDUCTION)  VALUE"
        assert out.splitlines()[0].split()[-1] == str(evaluated[1]), out
    else:
        assert status == 1 and out == "", (status, out)
        assert err.count("\n") == 1 and err.startswith("crossent eval: error: "), err
        assert "Traceback" not in err


# ================================================================ the fuzzers

@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def npy_header_fields(directory, data):
    npy, shape = data.draw(npy_from_fields(), label="file")
    run_case(directory, npy, ".npy", shape, data.draw)


def npz_header_fields(directory, data):
    npy, shape = data.draw(npy_from_fields(), label="member")
    compression = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    run_case(directory, npz_bytes({"a": npy}, compression), ".npz", shape, data.draw)


def mutated_npy_files(directory, data):
    npy, shape = data.draw(mutated_npy(), label="file")
    run_case(directory, npy, ".npy", shape, data.draw)


def mutated_npz_files(directory, data):
    npz, shape = data.draw(mutated_npz(), label="file")
    run_case(directory, npz, ".npz", shape, data.draw)


FUZZERS = [npy_header_fields, npz_header_fields, mutated_npy_files, mutated_npz_files]


@pytest.mark.parametrize("fuzzer", FUZZERS, ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzzed_file(directory, fuzzer, data):
    fuzzer(directory, data)


@pytest.mark.slow
@pytest.mark.parametrize("fuzzer", FUZZERS, ids=lambda f: f.__name__)
@CAMPAIGN
@given(data=st.data())
def test_fuzzed_file_campaign(directory, fuzzer, data):
    fuzzer(directory, data)


# ================================================================ each rule, by hand

def header(descr="<f8", fortran_order=False, shape=(3,)):
    return repr({"descr": descr, "fortran_order": fortran_order, "shape": shape})


def write(directory, name, data):
    path = directory / name
    path.write_bytes(data)
    return str(path)


def assert_refused(spec, error, *fragments):
    """``spec`` refused by evaluate, as the predictions and as the targets,
    with ``error`` naming the operand, the file and ``fragments``; the
    command line says the same on one line."""
    good = spec.split(":")[0] + ".good.npy"
    np.save(good, np.zeros(3))
    for pred, target, operand in ((spec, good, "PRED"), (good, spec, "TARGET")):
        with pytest.raises(error) as info:
            crossent.evaluate("mse_loss", pred, target)
        message = str(info.value)
        assert message.startswith(f"{operand}: "), message
        for fragment in (spec.split(":")[0],) + fragments:
            assert fragment in message, message
        assert_one_line(["eval", "mse_loss", pred, target], message)


def assert_one_line(argv, message):
    """The command line exits 1 with ``message`` as its one line on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main(argv) == 1
    assert out.getvalue() == "" and err.getvalue() == f"crossent eval: error: {message}\n"


def test_negative_dimensions_of_the_issue(tmp_path):
    """A prediction file of shape (-5, 10) with targets of shape (-5,), the
    predictions as both arguments of the binary loss, and shape (-5, -10)."""
    pred = write(tmp_path, "pred.npy", npy_bytes(header("<f8", False, (-5, 10)), bytes(400)))
    target = write(tmp_path, "target.npy", npy_bytes(header("<i8", False, (-5,)), bytes(40)))
    both = write(tmp_path, "both.npy", npy_bytes(header("<f8", False, (-5, -10)), bytes(400)))
    for loss, p, t, bad in (("cross_entropy", pred, target, pred),
                            ("binary_cross_entropy_with_logits", pred, pred, pred),
                            ("cross_entropy", both, target, both)):
        with pytest.raises(ValueError, match=r"^PRED: ") as info:
            crossent.evaluate(loss, p, t)
        message = str(info.value)
        assert bad in message and "'shape'" in message and "negative dimension -5 at axis 0" \
            in message, message
        assert_one_line(["eval", loss, p, t], message)


def test_negative_dimensions_through_python_dash_m(tmp_path):
    pred = write(tmp_path, "pred.npy", npy_bytes(header("<f8", False, (-5, 10)), bytes(400)))
    target = write(tmp_path, "target.npy", npy_bytes(header("<i8", False, (-5,)), bytes(40)))
    both = write(tmp_path, "both.npy", npy_bytes(header("<f8", False, (-5, -10)), bytes(400)))
    for loss, p, t in (("cross_entropy", pred, target),
                       ("binary_cross_entropy_with_logits", pred, pred),
                       ("cross_entropy", both, target)):
        done = subprocess.run([sys.executable, "-m", "crossent", "eval", loss, p, t],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1, done.stderr
        assert p in done.stderr and "negative dimension -5 at axis 0" in done.stderr


# (name, .npy bytes, exception, fragments of the message)
HEADER_CASES = [
    ("version 0.0", npy_bytes(header(), bytes(24), (0, 0)), ValueError, ["version 0.0"]),
    ("version 4.0", npy_bytes(header(), bytes(24), (4, 0)), ValueError, ["version 4.0"]),
    ("version 1.1", npy_bytes(header(), bytes(24), (1, 1)), ValueError, ["version 1.1"]),
    ("no magic", b"\x93NUMPX" + npy_bytes(header(), bytes(24))[6:], ValueError,
     ["not a .npy file"]),
    ("header length 0", npy_bytes(header(), bytes(24), length_delta=-10**6), ValueError,
     ["length field says 0"]),
    ("header length beyond the bound", npy_bytes(header(), bytes(24), (2, 0), 20000),
     ValueError, ["length field says", "10000"]),
    ("header beyond the file", npy_bytes(header(), b"", (2, 0), 3000), ValueError,
     ["truncated inside the .npy header"]),
    ("code in the header", npy_bytes("__import__('os').system('false')", bytes(24)),
     ValueError, ["not a Python literal: it holds code or names"]),
    ("not a dict", npy_bytes("[1, 2]", bytes(24)), ValueError, ["expected a dict"]),
    ("missing key", npy_bytes("{'descr': '<f8', 'shape': (3,)}", bytes(24)), ValueError,
     ["'fortran_order'"]),
    ("extra key", npy_bytes(header()[:-1] + ", 'x': 1}", bytes(24)), ValueError, ["'x'"]),
    ("object dtype", npy_bytes(header("|O"), bytes(24)), TypeError, ["object"]),
    ("complex dtype", npy_bytes(header("<c16", shape=(1,)), bytes(16)), TypeError,
     ["complex128"]),
    ("structured dtype", npy_bytes(header([("a", "<f8")]), bytes(24)), TypeError,
     ["structured"]),
    ("subarray dtype", npy_bytes(header("(2,)<f8"), bytes(48)), TypeError, ["(2,)<f8"]),
    ("string dtype", npy_bytes(header("|S8"), bytes(24)), TypeError, ["S8"]),
    ("unicode dtype", npy_bytes(header("<U2"), bytes(24)), TypeError, ["<U2"]),
    ("void dtype", npy_bytes(header("|V8"), bytes(24)), TypeError, ["V8"]),
    ("datetime dtype", npy_bytes(header("<M8[s]"), bytes(24)), TypeError, ["datetime64"]),
    ("float128", npy_bytes(header("<f16"), bytes(48)), TypeError, ["float128"]),
    ("not a dtype", npy_bytes(header("<q9"), bytes(24)), ValueError, ["'descr'", "<q9"]),
    ("fortran_order 1", npy_bytes(header(fortran_order=1), bytes(24)), ValueError,
     ["'fortran_order' is 1"]),
    ("fortran_order 'no'", npy_bytes(header(fortran_order="no"), bytes(24)), ValueError,
     ["'fortran_order' is 'no'"]),
    ("shape a list", npy_bytes(header(shape=[3]), bytes(24)), ValueError, ["'shape' is [3]"]),
    ("shape a bool", npy_bytes(header(shape=(True, 3)), bytes(24)), ValueError,
     ["True at axis 0"]),
    ("shape a float", npy_bytes(header(shape=(3.0,)), bytes(24)), ValueError,
     ["3.0 at axis 0"]),
    ("negative shape", npy_bytes(header(shape=(3, -1)), bytes(24)), ValueError,
     ["negative dimension -1 at axis 1"]),
    ("overflowing shape", npy_bytes(header(shape=(2**40, 2**40)), bytes(24)), ValueError,
     ["overflows"]),
    ("overflowing beside a 0", npy_bytes(header(shape=(0, 2**62)), b""), ValueError,
     ["overflows"]),
    ("65 dimensions", npy_bytes(header(shape=(1,) * 65), bytes(8)), ValueError,
     ["65 dimensions"]),
    ("payload short", npy_bytes(header(shape=(3,)), bytes(23)), ValueError,
     ["truncated", "24 bytes", "only 23"]),
    ("latin-1 not utf-8", npy_bytes(header("\xe9"), bytes(24), (3, 0))[:-30] + b"\xff" * 30,
     ValueError, ["corrupt .npy header"]),
]


@pytest.mark.parametrize("data, error, fragments",
                         [pytest.param(*case[1:], id=case[0]) for case in HEADER_CASES])
@pytest.mark.parametrize("container", ["npy", "stored", "deflated"])
def test_each_header_rule(tmp_path, data, error, fragments, container):
    if container == "npy":
        spec = write(tmp_path, "bad.npy", data)
    else:
        method = zipfile.ZIP_STORED if container == "stored" else zipfile.ZIP_DEFLATED
        spec = write(tmp_path, "bad.npz", npz_bytes({"a": data}, method)) + ":a"
        if fragments == ["not a .npy file"]:
            fragments = ["bad.npz:a"] + fragments
    assert_refused(spec, error, *fragments)


def test_byte_swapped_and_every_real_dtype_are_read(tmp_path):
    target = np.random.default_rng(2).normal(size=(70, 3))
    t = write(tmp_path, "t.npy", array_bytes(target))
    for descr in GOOD_DESCRS:
        array = valid_values(descr, (70, 3), np.random.default_rng(1))
        path = write(tmp_path, "x.npy", array_bytes(array))
        got = crossent.evaluate("mse_loss", path, t, chunk_rows=64)
        in_memory = crossent.evaluate("mse_loss", array, target, chunk_rows=64)
        assert got.tobytes() == in_memory.tobytes(), descr


# ---------------------------------------------------------------- .npz members

def npz_with_central_field(field, value, compression=zipfile.ZIP_DEFLATED, array=None):
    array = np.arange(12.0) if array is None else array
    data = npz_bytes({"a": array_bytes(array)}, compression)
    return patch_central(data, central_entries(data)[0], field, value)


NPZ_CASES = [
    ("a directory (unix mode)", "external attributes", (stat.S_IFDIR | 0o755) << 16,
     ["a directory"]),
    ("a directory (DOS attribute)", "external attributes", 0x10, ["a directory"]),
    ("a symbolic link", "external attributes", (stat.S_IFLNK | 0o777) << 16,
     ["a symbolic link"]),
    ("a fifo", "external attributes", (stat.S_IFIFO | 0o644) << 16, ["not a regular file"]),
    ("encrypted", "flags", 0x1, ["encrypted"]),
    ("bzip2", "method", 12, ["compression method 12"]),
    ("unknown method", "method", 99, ["compression method 99"]),
    ("size beyond deflate's ratio", "file size", 2**31, ["more than deflate can give"]),
    ("compressed size beyond the file", "compressed size", 10**6, ["truncated"]),
    ("local header offset beyond the file", "local header offset", 10**6, ["truncated"]),
]


@pytest.mark.parametrize("field, value, fragments",
                         [pytest.param(*case[1:], id=case[0]) for case in NPZ_CASES])
def test_each_member_rule(tmp_path, field, value, fragments):
    spec = write(tmp_path, "m.npz", npz_with_central_field(field, value)) + ":a"
    assert_refused(spec, ValueError, "m.npz:a", *fragments)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_end_record_placing_the_directory_beyond_the_file(tmp_path, compression):
    """Found by the fuzzer: zipfile moves every member's offset by the
    directory's distance from where the end record says it is, so a lying
    end record gave a negative offset, and seeking there raised a bare
    ``OSError: [Errno 22] Invalid argument`` naming no file."""
    data = npz_bytes({"a": array_bytes(np.arange(12.0))}, compression)
    end = data.rfind(b"PK\x05\x06")
    directory_offset = struct.unpack_from("<I", data, end + 16)[0]
    data = data[:end + 16] + struct.pack("<I", directory_offset + 300) + data[end + 20:]
    spec = write(tmp_path, "m.npz", data) + ":a"
    assert_refused(spec, ValueError, "m.npz:a", "offset -300")


def test_a_regular_file_mode_is_read(tmp_path):
    spec = write(tmp_path, "m.npz", npz_with_central_field(
        "external attributes", (stat.S_IFREG | 0o644) << 16)) + ":a"
    assert crossent.evaluate("mse_loss", spec, np.arange(12.0)) == 0.0


def test_stored_size_that_disagrees(tmp_path):
    data = npz_with_central_field("file size", 10**6, zipfile.ZIP_STORED)
    spec = write(tmp_path, "m.npz", data) + ":a"
    assert_refused(spec, ValueError, "m.npz:a", "stored member")


def test_wrong_crc_of_a_deflated_member(tmp_path):
    spec = write(tmp_path, "m.npz", npz_with_central_field("crc", 12345)) + ":a"
    assert_refused(spec, ValueError, "m.npz:a", "CRC")


def test_zip_bomb_is_read_in_bounded_memory(tmp_path):
    """32 MiB of zeros deflated to ~32 KiB: streamed a chunk at a time (1/64
    of the member here), it costs a few chunks' memory (the chunk, its
    per-sample losses and their exact sum), not the member's."""
    rows, cols = 2**19, 8
    member = npy_bytes(header("<f8", False, (rows, cols)), b"") + bytes(rows * cols * 8)
    spec = write(tmp_path, "bomb.npz", npz_bytes({"a": member}, zipfile.ZIP_DEFLATED)) + ":a"
    assert (tmp_path / "bomb.npz").stat().st_size < rows * cols * 8 // 500
    chunk_rows = rows // 64
    with time_limit(120), traced_peak(rows * cols * 8 // 4):
        loss = crossent.evaluate("mse_loss", spec, spec, chunk_rows=chunk_rows, n_threads=1)
    assert loss == 0.0


def test_zip_bomb_with_a_lying_directory_is_refused_before_reading(tmp_path, monkeypatch):
    """A member said to expand to 4 GiB from a few bytes: refused from the
    directory alone, before any byte is decompressed."""
    data = npz_with_central_field("file size", 2**32 - 1)
    spec = write(tmp_path, "bomb.npz", data) + ":a"
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("decompressed"))
    with pytest.raises(ValueError, match="more than deflate can give"):
        crossent.evaluate("mse_loss", spec, np.arange(12.0))


# ---------------------------------------------------------------- subprocesses

@pytest.mark.parametrize("fuzzer", [mutated_npy_files], ids=lambda f: f.__name__)
@settings(FUZZ, max_examples=2)
@given(data=st.data())
def test_fuzzed_file_in_a_subprocess(directory, fuzzer, data):
    """A few cases through ``python -m crossent eval`` itself (a real process:
    the exit status, the streams, a hard timeout)."""
    npy, shape = data.draw(mutated_npy(), label="file")
    path = write(directory, "sub.npy", npy)
    done = subprocess.run([sys.executable, "-m", "crossent", "eval", "mse_loss", path, path,
                           "--threads", "1"], capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        assert done.stderr == "" and done.stdout.count("\n") == 1
    else:
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert path in done.stderr or "PRED" in done.stderr
