"""Executors for dataset-scale runs (``fxlic eval``, ``fxlic vectors`` over an
image folder, ``fxlic quantize`` calibration, ``tools/paper_tables.py``).

One interface, three ways of running the same tasks:

* ``Serial``: in this process (``--jobs 1``);
* ``Pool``: a local pool of spawned worker processes, one BLAS / Numba thread
  each (``--jobs N``; the default is the number of usable CPUs);
* ``DaskExecutor``: a Dask distributed cluster (``--scheduler ADDRESS`` or
  ``$FXLIC_SCHEDULER``, e.g. ``tcp://host:8786``); the optional ``dask``
  extra, imported only when a scheduler is named.

A task is a module-level function and a picklable item; ``results`` yields
``(index, get)`` as tasks finish, in any order, and callers store each result
under its index, so the output (and its order) does not depend on the
executor.  ``get()`` returns the task's result or raises its exception.

Dask workers must run the same fxlic (checked on connecting) and see every
path a task names (models, images, the output directory of ``fxlic
vectors``) at the same place: a shared filesystem.
"""
from __future__ import annotations

import os

from .errors import CliError

#: environment variable naming the Dask scheduler when --scheduler is not given
SCHEDULER_ENV = "FXLIC_SCHEDULER"
#: seconds to wait for the scheduler (and for its first worker); env override
TIMEOUT_ENV = "FXLIC_SCHEDULER_TIMEOUT"
DEFAULT_TIMEOUT = 10.0
#: thread counts of the libraries a worker process uses (one thread each)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class SchedulerError(CliError):
    """The Dask scheduler cannot be used (not installed, unreachable, no or
    mismatched workers): one line, exit status 1."""


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_jobs(jobs) -> None:
    """``--jobs`` must be a positive count (None: automatic)."""
    if jobs is not None and jobs < 1:
        raise CliError("--jobs must be at least 1")


def worker_fingerprint() -> dict:
    """What must agree between this process and every Dask worker."""
    from . import SPEC_VERSION, __version__
    return {"fxlic": __version__, "spec": SPEC_VERSION}


class Executor:
    """Runs ``fn(item, **shared)`` for every item; see the module docstring."""
    kind = "serial"
    workers = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Release workers and connections (the executor may not be used after)."""

    def describe(self) -> str:
        return self.kind if self.workers == 1 else f"{self.kind} x{self.workers}"

    def results(self, fn, items, **shared):
        """Yield (index, get) for every item as its task finishes."""
        for i, item in enumerate(items):
            yield i, (lambda item=item: fn(item, **shared))

    def map(self, fn, items, progress=None, **shared) -> list:
        """``[fn(item, **shared) for item in items]`` in item order;
        ``progress(1)`` after each task."""
        out = [None] * len(items)
        for i, get in self.results(fn, items, **shared):
            out[i] = get()
            if progress is not None:
                progress(1)
        return out


class Serial(Executor):
    """Every task in this process, in item order."""


class Pool(Executor):
    """A local pool of ``workers`` spawned processes (started on first use,
    one thread per library each)."""
    kind = "pool"

    def __init__(self, workers: int):
        self.workers = workers
        self._ex = None
        self._saved = None

    def _start(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        self._saved = {v: os.environ.get(v) for v in THREAD_VARS}
        for v in THREAD_VARS:  # spawned children inherit the environment
            os.environ[v] = "1"
        self._ex = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))

    def results(self, fn, items, **shared):
        from concurrent.futures import as_completed
        from functools import partial
        if self._ex is None:
            self._start()
        call = partial(fn, **shared) if shared else fn
        futs = {self._ex.submit(call, item): i for i, item in enumerate(items)}
        try:
            for f in as_completed(futs):
                yield futs[f], f.result
        finally:
            for f in futs:
                f.cancel()

    def close(self):
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None
        if self._saved is not None:
            for v, val in self._saved.items():
                if val is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = val
            self._saved = None


class DaskExecutor(Executor):
    """Tasks on the Dask distributed cluster whose scheduler is at ``address``."""
    kind = "dask"

    def __init__(self, address: str, timeout: float = None):
        self.address = address
        self.timeout = scheduler_timeout() if timeout is None else timeout
        try:
            from dask.distributed import Client
        except ImportError:
            raise SchedulerError(f"--scheduler {address} needs Dask: pip install 'fxlic[dask]' "
                                 f"(dask[distributed])") from None
        _check_address(address)
        try:
            self.client = Client(address, timeout=self.timeout, set_as_default=False)
        except Exception as e:  # noqa: BLE001  (OSError, TimeoutError, ValueError for a malformed address)
            raise SchedulerError(f"--scheduler {address}: cannot connect to the Dask scheduler within "
                                 f"{self.timeout:g} s ({_one_line(e)})") from None
        try:
            self._check_workers()
        except BaseException:
            self.close()
            raise

    def _check_workers(self):
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except Exception:  # noqa: BLE001
            raise SchedulerError(f"--scheduler {self.address}: the scheduler has no workers "
                                 f"(waited {self.timeout:g} s)") from None
        try:
            prints = self.client.run(worker_fingerprint)
        except Exception as e:  # noqa: BLE001
            raise SchedulerError(f"--scheduler {self.address}: the workers cannot run fxlic "
                                 f"({_one_line(e)}; install the same fxlic on every worker)") from None
        here = worker_fingerprint()
        for w, fp in sorted(prints.items()):
            if fp != here:
                raise SchedulerError(f"--scheduler {self.address}: worker {w} runs {_fp(fp)}, this process "
                                     f"{_fp(here)} (results would differ; install the same fxlic)")
        self.workers = len(prints)

    def describe(self) -> str:
        return f"dask {self.address} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def results(self, fn, items, **shared):
        from dask.distributed import as_completed
        shared = {k: self.client.scatter(v, broadcast=True) for k, v in shared.items()}
        futs = self.client.map(fn, list(items), pure=False, **shared) if items else []
        index = {f.key: i for i, f in enumerate(futs)}
        try:
            for f in as_completed(futs, loop=self.client.loop):
                yield index[f.key], f.result
        finally:
            self.client.cancel(futs)

    def close(self):
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()


def scheduler_timeout() -> float:
    """``$FXLIC_SCHEDULER_TIMEOUT`` seconds (default 10)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise CliError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds")
    return v


def make_executor(jobs: int = None, scheduler: str = None, tasks: int = None) -> Executor:
    """The executor of ``--jobs`` / ``--scheduler``: Dask when a scheduler is
    named (argument, else ``$FXLIC_SCHEDULER``), else a pool of ``jobs``
    processes (None: one per usable CPU), at most ``tasks`` of them; Serial
    when that leaves one."""
    check_jobs(jobs)
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if scheduler:
        return DaskExecutor(scheduler)
    n = cpu_count() if jobs is None else jobs
    if tasks is not None:
        n = min(n, tasks)
    return Pool(n) if n > 1 else Serial()


def add_arguments(parser, what: str = "tasks", jobs: int = None, auto: str = "one per CPU") -> None:
    """The ``--jobs`` (default ``jobs``; None: ``auto``) and ``--scheduler``
    options of a command."""
    default = f"default: {auto}; 1: in this process" if jobs is None else \
        ("default 1: in this process" if jobs == 1 else f"default {jobs}; 1: in this process")
    parser.add_argument("--jobs", type=int, default=jobs, metavar="N",
                        help=f"local worker processes for the {what} ({default}); results do not depend on it")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help=f"run the {what} on a Dask distributed cluster, e.g. tcp://host:8786 (default "
                             f"${SCHEDULER_ENV}; needs pip install 'fxlic[dask]'; the workers must see the "
                             f"same paths); results are identical to a local run")


def _check_address(address: str) -> None:
    """SchedulerError for an address Dask cannot parse (checked before a Client
    exists: a Client that fails on a malformed address hangs at exit)."""
    from distributed.comm.addressing import get_address_host_port, normalize_address, parse_address
    try:
        scheme, _ = parse_address(normalize_address(address))
        if scheme not in ("inproc", "ucx"):
            get_address_host_port(address)
    except ValueError as e:
        raise SchedulerError(f"--scheduler {address}: not a Dask scheduler address ({e}); "
                             f"e.g. tcp://host:8786") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _fp(fp) -> str:
    if not isinstance(fp, dict):
        return repr(fp)
    return f"fxlic {fp.get('fxlic')} ({fp.get('spec')})"
