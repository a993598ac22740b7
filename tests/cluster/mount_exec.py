"""Run a pod's container command with its volumes at the paths the container mounts.

Started by the kubelet stand-in (`tests/cluster/pod_process.py`) as
`unshare --mount --propagation private python mount_exec.py SPEC.json`: in the new, private mount
namespace it bind-mounts each materialised volume at its absolute container path, then replaces
itself with the command (`os.execvpe`), which sees `/etc/leadtime/leadtime.yaml` and the
ServiceAccount token where a container would. Nothing of it reaches the machine's own mount
table or filesystem: where a mount path does not exist (`/etc/leadtime`), its nearest existing
ancestor is covered by an overlay whose upper layer lives in the pod's folder, and the directory
is made there.

Run by path, not imported: it needs nothing but the standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, kind: str | None, flags: int, data: str | None) -> None:
    result = _libc.mount(
        source.encode(),
        target.encode(),
        None if kind is None else kind.encode(),
        ctypes.c_ulong(flags),
        None if data is None else data.encode(),
    )
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def _make_mount_point(target: Path, is_dir: bool, scratch: Path, covered: set[Path]) -> None:
    """Create `target` without writing to the machine's filesystem: under an overlay on its
    nearest existing ancestor (one overlay per ancestor, its upper layer in `scratch`)."""
    if target.exists():
        return
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    ancestor = ancestor.resolve()
    if ancestor == Path("/"):  # an overlay on / would hide /proc, /dev and every other mount
        raise OSError(f"{target}: no directory above it but / to make it in")
    if not any(ancestor == done or done in ancestor.parents for done in covered):
        layer = scratch / f"overlay-{len(covered)}"
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        options = f"lowerdir={ancestor},upperdir={layer / 'upper'},workdir={layer / 'work'}"
        _mount("overlay", str(ancestor), "overlay", 0, options)
        covered.add(ancestor)
    if is_dir:
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=spec["scratch"]))  # fresh per start
    # Hold every source open first: a later mount (an emptyDir on /tmp) may cover the folder
    # the sources sit in; /proc/self/fd/N still names them.
    mounts = sorted(spec["mounts"], key=lambda m: len(Path(m["target"]).parts))
    held = [os.open(m["source"], os.O_PATH) for m in mounts]
    kinds = [os.path.isdir(m["source"]) for m in mounts]
    covered: set[Path] = set()
    for mount, fd, is_dir in zip(mounts, held, kinds, strict=True):
        target = Path(mount["target"])
        _make_mount_point(target, is_dir, scratch, covered)
        _mount(f"/proc/self/fd/{fd}", str(target), None, MS_BIND | MS_REC, None)
        if mount["read_only"]:
            _mount("none", str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    for fd in held:
        os.close(fd)
    os.chdir(spec["working_dir"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
