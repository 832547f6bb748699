"""The runner's overhead over `docker run`, and input hashing throughput against two ceilings.

1. A trivial container (busybox `true`, FROM scratch) run by gefreg — through the library
   (`plan_run` + `run_service`, one engine connection, as a long-lived caller would) and through
   the CLI (a fresh `gefreg run` process each time) — against `docker run --rm` with the same
   hardening flags and mounts. Runs are interleaved; medians. Target: library ≤ 1.2x. Also
   timed: `python -c "import click, docker"`, which with the library run gives the floor of
   any command-line tool built on click and the docker SDK, gefreg's or another.
2. Hashing 2 GB of files of mixed sizes (`tree_manifest`, what the runner does to inputs) against
   `sha256sum` over the same files and against Python's hashlib reading one large file per core
   at once (the ceiling). All with a warm page cache (every file is read once first). Target:
   ≥ 80% of the hashlib all-cores ceiling.

3. What the disk limit costs a run (:func:`bench_staging`): the run's own output file system
   made and removed, beside a plain folder, and delivering 1 GiB out of it (a copy) beside a
   rename.

    .venv/bin/python benchmarks/bench_run.py [--runs 15] [--gigabytes 2]
                                             [--skip-run|--skip-staging|--skip-hash]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import VENV_BIN, report
from gefreg.hashing import CHUNK

MiB = 1024**2


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def bench_run(runs: int) -> None:
    from gefreg.catalog.entries import load_entry
    from gefreg.engine import Engine
    from gefreg.image.build import build_entry
    from gefreg.run.execute import run_service
    from gefreg.run.hardening import RUN_LABEL
    from gefreg.run.plan import plan_run
    from gefreg.settings import Settings
    from tests.helpers import demo_entry, make_catalog, own_run_containers

    with tempfile.TemporaryDirectory(prefix="gefreg-bench-run-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        tree = demo_entry(
            name="noop",
            base="scratch",
            template="static",
            files={"busybox": "/bin/busybox"},
            command=["/bin/busybox", "true"],
        )
        tree["noop"]["busybox"] = Path("/bin/busybox").read_bytes()
        catalog = make_catalog(root / "catalog", tree)
        os.chmod(catalog / "noop" / "busybox", 0o755)
        settings = Settings(catalog, "127.0.0.1:1", root / "state")
        engine = Engine.connect()
        image = build_entry(settings, load_entry(catalog / "noop", set()), engine=engine).image_id
        inputs = root / "in"
        inputs.mkdir(mode=0o755)
        (inputs / "data.txt").write_text("a small input\n")
        uid = os.geteuid()
        user = f"{uid}:{os.getegid()}" if uid else "10001:10001"

        counter = iter(range(10**6))

        def fresh_out() -> Path:
            out = root / f"out{next(counter)}"
            out.mkdir()
            if uid == 0:
                os.chown(out, 10001, 10001)  # docker run does no ownership dance: give it one
            return out

        def library() -> None:
            n = next(counter)
            request = plan_run(
                settings,
                engine,
                target="noop",
                inputs=[str(inputs)],
                outputs=[str(root / f"lib-out{n}")],
                record=root / "records" / f"lib{n}.json",
            )
            result = run_service(request, engine=engine)
            assert result.succeeded, result.error

        env = {**os.environ, "GEFREG_STATE": str(settings.state_dir)}

        def cli() -> None:
            n = next(counter)
            subprocess.run(
                [
                    str(VENV_BIN / "gefreg"),
                    "run",
                    "--catalog",
                    str(catalog),
                    "noop",
                    "-i",
                    str(inputs),
                    "-o",
                    str(root / f"cli-out{n}"),
                    "--record",
                    str(root / "records" / f"cli{n}.json"),
                ],
                check=True,
                capture_output=True,
                env=env,
            )

        def docker() -> None:
            out = fresh_out()
            subprocess.run(
                [
                    "docker", "run", "--rm", "--network", "none", "--read-only",
                    "--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=64m", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges", "--user", user,
                    "--pids-limit", "256", "--memory", "1g", "--memory-swap", "1g", "--cpus", "1",
                    "--mount", f"type=bind,source={inputs},target=/data/input,readonly",
                    "--mount", f"type=bind,source={out},target=/data/output",
                    "--label", f"{RUN_LABEL}=bench", image,
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip

        def imports() -> None:
            """What any Python command built on click and the docker SDK pays before it does
            anything: the interpreter and those two imports (no gefreg)."""
            subprocess.run([sys.executable, "-c", "import click, docker"], check=True)

        timings: dict[str, list[float]] = {"library": [], "cli": [], "docker": [], "imports": []}
        actions: dict[str, Callable[[], None]] = {
            "library": library,
            "cli": cli,
            "docker": docker,
            "imports": imports,
        }
        for action in actions.values():  # warm-up: page cache, engine, imports
            action()
        for _ in range(runs):
            for name, action in actions.items():
                start = time.perf_counter()
                action()
                timings[name].append(time.perf_counter() - start)
        assert own_run_containers(engine, root) == [], "containers left behind"
        rows = [
            ("gefreg run (library: plan_run + run_service)", _median(timings["library"])),
            ("gefreg run (CLI, new process each time)", _median(timings["cli"])),
            ("docker run --rm, same hardening", _median(timings["docker"])),
        ]
        ratio = report(
            f"trivial container, median of {runs} interleaved runs",
            rows,
            ratio_of=(rows[0][0], rows[2][0]),
        )
        cli_ratio = rows[1][1] / rows[2][1]
        print(f"  ratio CLI / docker run = {cli_ratio:.2f}x")
        floor = _median(timings["imports"]) + rows[0][1]
        print(
            f"  floor of any click + docker-SDK command: `python -c 'import click, docker'` "
            f"{_median(timings['imports']):.3f} s + the library run = {floor:.3f} s "
            f"= {floor / rows[2][1]:.2f}x docker run; the CLI is {rows[1][1] / floor:.2f}x that"
        )
        print(f"  target (library): <= 1.2x -> {'met' if ratio and ratio <= 1.2 else 'MISSED'}")
        engine.remove_image(image)


def generate(root: Path, gigabytes: float) -> list[Path]:
    """Mixed sizes: half the bytes in 256 MiB files, the rest in 16 MiB, 1 MiB and 16 KiB files."""
    total = int(gigabytes * 1024**3)
    plan = [(256 * MiB, 0.5), (16 * MiB, 0.2), (1 * MiB, 0.25), (16 * 1024, 0.05)]
    block = os.urandom(4 * MiB)
    paths = []
    for size, share in plan:
        folder = root / f"size-{size}"
        folder.mkdir(parents=True)
        for i in range(max(1, int(total * share) // size)):
            path = folder / f"f{i:05d}"
            with open(path, "wb") as fh:
                left = size
                fh.write(i.to_bytes(8, "little"))  # every file different
                left -= 8
                while left > 0:
                    fh.write(block[: min(left, len(block))])
                    left -= len(block)
            paths.append(path)
    return paths


def warm(paths: list[Path]) -> None:
    buf = bytearray(CHUNK)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def hashlib_ceiling(files: list[Path], threads: int) -> float:
    """Bytes/s of plain hashlib.sha256 on ``threads`` threads at once, each reading its share of
    ``files`` (the big ones) one after the other: no walking, no pool, no bookkeeping."""

    def work(mine: list[Path]) -> None:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        for path in mine:
            digest = hashlib.sha256()
            with open(path, "rb", buffering=0) as fh:
                while n := fh.readinto(buf):
                    digest.update(view[:n])

    shares = [files[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(f.stat().st_size for f in files) / (time.perf_counter() - start)


def bench_hash(gigabytes: float, repeats: int = 9) -> None:
    from gefreg.run.tree_manifest import tree_manifest

    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="gefreg-bench-hash-", dir="/tmp") as tmp:
        root = Path(tmp)
        paths = generate(root, gigabytes)
        total = sum(p.stat().st_size for p in paths)
        big = sorted(paths, key=lambda p: p.stat().st_size, reverse=True)[: 2 * cores]
        print(
            f"\n## hashing {total / 1e9:.2f} GB in {len(paths)} files, warm page cache "
            f"(ceiling: {len(big)} x {big[0].stat().st_size // MiB} MiB files)"
        )
        warm(paths)

        def timed(action: Callable[[], object], size: int) -> float:
            start = time.perf_counter()
            action()
            return size / (time.perf_counter() - start) / 1e9

        seen: list[int] = []
        rates: dict[str, list[float]] = {}
        big_bytes = sum(p.stat().st_size for p in big)
        rounds: dict[str, Callable[[], float]] = {
            "gefreg tree_manifest": lambda: timed(lambda: tree_manifest(root), total),
            "gefreg tree_manifest with a progress callback": lambda: timed(
                lambda: tree_manifest(root, progress=lambda d, t: seen.append(d)), total
            ),
            f"hashlib ceiling: {cores} threads at once": lambda: hashlib_ceiling(big, cores) / 1e9,
            "hashlib, one thread": lambda: hashlib_ceiling(big, 1) / 1e9,
        }
        for _ in range(repeats):  # interleaved, so load from elsewhere hits all alike
            for name, action in rounds.items():
                rates.setdefault(name, []).append(action())
        listing = root / "files.txt"
        listing.write_bytes(b"\0".join(bytes(p) for p in paths))
        for name, command in (
            ("sha256sum, one process", f"xargs -0 sha256sum < {listing} > /dev/null"),
            (
                f"sha256sum, xargs -P {cores}",
                f"xargs -0 -P {cores} -n 64 sha256sum < {listing} > /dev/null",
            ),
        ):

            def hash_all(c: str = command) -> None:
                subprocess.run(c, shell=True, check=True)

            rates[name] = [timed(hash_all, total) for _ in range(3)]
        assert big_bytes
        medians = {name: _median(values) for name, values in rates.items()}
        rows = list(medians.items())
        report(f"throughput (median of {repeats} interleaved rounds)", rows, unit="GB/s")
        for name, values in rates.items():
            print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)}")
        ceiling_name = f"hashlib ceiling: {cores} threads at once"
        ratios = [
            g / c for g, c in zip(rates["gefreg tree_manifest"], rates[ceiling_name], strict=True)
        ]
        share = _median(ratios)
        print(
            f"  gefreg / hashlib all-cores ceiling, per round: "
            f"{' '.join(f'{r:.0%}' for r in ratios)}; median {share:.0%}"
        )
        print(f"  target: >= 80% -> {'met' if share >= 0.8 else 'MISSED'}")
        best = max(rates["gefreg tree_manifest"]) / max(rates[ceiling_name])
        print(
            f"  best round of each (least disturbed by other load): "
            f"{max(rates['gefreg tree_manifest']):.2f} / {max(rates[ceiling_name]):.2f} GB/s "
            f"= {best:.0%}"
        )
        scaling = medians[ceiling_name] / medians["hashlib, one thread"]
        print(f"  hashlib {cores} threads / 1 thread = {scaling:.2f}x on this machine now")
        print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
    assert not Path(tmp).exists()


def bench_staging(runs: int, gigabytes: float = 1.0) -> None:
    """What the disk limit costs a run: making and removing the run's own output file system
    (sparse image, mkfs.ext4, loop mount, umount — what a root caller gets) beside a plain
    staging folder (watched instead), and delivering ``gigabytes`` of outputs out of it (a copy)
    beside the rename a plain folder needs."""
    from gefreg.run.delivery import deliver
    from gefreg.run.ownership import Identity
    from gefreg.run.staging import FILESYSTEM, create_staging, remove_staging

    if os.geteuid() != 0:
        print("\n## staging: needs root (a file system of the run's own); skipped")
        return
    kernel, plain = Identity(0, 0, 10001, 10001), Identity(1234, 1234, 1234, 1234)
    with tempfile.TemporaryDirectory(prefix="gefreg-bench-staging-", dir="/tmp") as tmp:
        root = Path(tmp)
        counter = iter(range(10**6))

        def cycle(identity: Identity, size: int, limit: int = 10 * 1024**3) -> tuple[float, float]:
            """(seconds to create + remove, seconds to deliver ``size`` bytes)."""
            n = next(counter)
            out = root / f"out{n}"
            out.mkdir()
            start = time.perf_counter()
            staging = create_staging({"result": out}, f"urn:uuid:{n:08x}", identity, limit)
            made = time.perf_counter() - start
            if identity is kernel:
                assert staging.enforced_by == FILESYSTEM
            block = os.urandom(16 * MiB)
            for i in range(size // (256 * MiB)):
                with open(staging.folders["result"] / f"f{i}", "wb") as fh:
                    for _ in range(16):
                        fh.write(block)
            start = time.perf_counter()
            done = deliver(staging, overwrite=False)
            delivered = time.perf_counter() - start
            start = time.perf_counter()
            assert remove_staging(staging, delivered=not done.problems) == []
            made += time.perf_counter() - start
            shutil.rmtree(out)
            return made, delivered

        empty = {"filesystem": [cycle(kernel, 0) for _ in range(runs)],
                 "plain": [cycle(plain, 0) for _ in range(runs)]}  # fmt: skip
        size = int(gigabytes * 1024**3)
        full = {"filesystem": [cycle(kernel, size) for _ in range(3)],
                "plain": [cycle(plain, size) for _ in range(3)]}  # fmt: skip
        made = {k: _median([m for m, _ in v]) for k, v in empty.items()}
        moved = {k: _median([d for _, d in v]) for k, v in full.items()}
        rows = [
            ("a file system of the run's own: make + remove", made["filesystem"]),
            ("a plain staging folder: make + remove", made["plain"]),
            (f"deliver {gigabytes:g} GiB from the run's file system (copy)", moved["filesystem"]),
            (f"deliver {gigabytes:g} GiB from a plain folder (rename)", moved["plain"]),
        ]
        report(f"the disk limit's cost per run (median of {runs} / 3 runs)", rows)
        per_gb = rows[2][1] / gigabytes
        print(f"  copy out: {gigabytes / rows[2][1]:.2f} GiB/s ({per_gb:.2f} s per GiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--gigabytes", type=float, default=2.0, help="GiB of files to hash")
    parser.add_argument("--skip-run", action="store_true")
    parser.add_argument("--skip-hash", action="store_true")
    parser.add_argument("--skip-staging", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; "
        f"{shutil.which('docker')}"
    )
    if not args.skip_run:
        bench_run(args.runs)
    if not args.skip_staging:
        bench_staging(args.runs)
    if not args.skip_hash:
        bench_hash(args.gigabytes)


if __name__ == "__main__":
    main()
