"""Run a pod's container command with its volumes at the paths the container mounts.

Started by the kubelet stand-in (`tests/cluster/pod_process.py`) as
`unshare --mount --propagation private python mount_exec.py SPEC.json`: in the new, private mount
namespace it bind-mounts each materialised volume at its absolute container path, then replaces
itself with the command (`os.execvpe`), which sees `/etc/leadtime/leadtime.yaml` and the
ServiceAccount token where a container would. Nothing of it reaches the machine's own mount
table or filesystem: where a mount path does not exist (`/etc/leadtime`), its nearest existing
ancestor is covered by an overlay whose upper layer lives in the pod's folder, and the directory
is made there (or in the volume above it, where that is writable). The image's own files
(`Image.files`: the interpreter, the installed package) are bound back in sight wherever a
volume hid them, as an image's files are never hidden by a volume it does not mount on them.

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


def _make_mount_point(target: Path, is_dir: bool, scratch: Path, writable: set[Path]) -> None:
    """Create `target` without writing to the machine's filesystem: inside a volume mounted
    writable, or else under an overlay on its nearest existing ancestor (its upper layer in
    `scratch`), which is then writable too."""
    if target.exists():
        return
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    ancestor = ancestor.resolve()
    if not any(ancestor == done or done in ancestor.parents for done in writable):
        if ancestor == Path("/"):  # an overlay on / would hide /proc, /dev and every mount
            raise OSError(f"{target}: no directory above it but / to make it in")
        layer = scratch / f"overlay-{len(writable)}"
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        options = f"lowerdir={ancestor},upperdir={layer / 'upper'},workdir={layer / 'work'}"
        _mount("overlay", str(ancestor), "overlay", 0, options)
        writable.add(ancestor)
    if is_dir:
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()


def _bind(fd: int, target: Path) -> None:
    _mount(f"/proc/self/fd/{fd}", str(target), None, MS_BIND | MS_REC, None)


def _in_sight(path: Path, fd: int) -> bool:
    """Whether `path` still names the folder `fd` holds (no volume mounted above hides it)."""
    held = os.fstat(fd)
    try:
        seen = os.stat(path)
    except FileNotFoundError:
        return False
    return (seen.st_dev, seen.st_ino) == (held.st_dev, held.st_ino)


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    # Everything from the machine is held open before the first mount: a volume on /tmp may
    # cover where the sources, the scratch folder or the package live; /proc/self/fd/N still
    # names them.
    scratch_fd = os.open(tempfile.mkdtemp(prefix="run-", dir=spec["scratch"]), os.O_PATH)
    scratch = Path(f"/proc/self/fd/{scratch_fd}")
    mounts = sorted(spec["mounts"], key=lambda m: len(Path(m["target"]).parts))
    sources = [(os.open(m["source"], os.O_PATH), os.path.isdir(m["source"])) for m in mounts]
    image_files = [(Path(path), os.open(path, os.O_PATH)) for path in spec["image_files"]]
    writable: set[Path] = set()
    for mount, (fd, is_dir) in zip(mounts, sources, strict=True):
        target = Path(mount["target"])
        _make_mount_point(target, is_dir, scratch, writable)
        _bind(fd, target)
        if mount["read_only"]:
            _mount("none", str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        else:
            writable.add(target)
    for path, fd in image_files:  # the image's own files, above any volume that hid them
        if not _in_sight(path, fd):
            _make_mount_point(path, True, scratch, writable)
            _bind(fd, path)
    for fd in [scratch_fd, *(fd for fd, _ in sources), *(fd for _, fd in image_files)]:
        os.close(fd)
    os.chdir(spec["working_dir"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
