"""A dataset is a folder with one subfolder per class; corrections come from annotations.csv.

Layouts understood:
- ``DIR/<class>/**/<image>`` — the split is made by :mod:`imgclf.data.split`;
- ``DIR/train/<class>/...`` plus ``DIR/test/<class>/...`` — that is the split;
- ``DIR/train/``, ``DIR/validation/`` (or ``val/``, ``valid/``) and ``DIR/test/`` (the Kaggle and
  Hugging Face layout) — the validation images are split ``val``: merged into train for the SVM,
  the validation set of a refinement;
- ``DIR/train/`` and ``DIR/validation/`` without ``test/`` — the validation folder is the test split.
:attr:`Dataset.folders` says what each top folder became.
Hidden files and folders are ignored. Nothing here decodes an image or opens a file.

Only regular files inside the dataset folder are images of it: a symbolic link is followed only
when it ends inside the folder, and a link loop, a broken link, a link (file or folder) that
leads outside, a FIFO, a device or a socket is left out and listed in :attr:`Dataset.skipped`
with the reason, so that nothing a dataset lists can make a reader block, read without end or
show a file from elsewhere. Every command and every route of the UI lists images through here.

The pool of unlabelled images (``data.pool``, default ``DIR/_unlabeled``) is never a class: its
images are listed in :attr:`Dataset.pool` until an annotation gives one a class (action ``label``),
and from then on it is an item like the images of that class's folder (``from_pool`` set).
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..util.errors import DatasetError
from ..util.files import file_kind
from .annotations import LABELLING, current_state
from .images import is_image_file

PREDEFINED_TEST_DIRS = ("test", "val", "valid", "validation")
VALIDATION_DIRS = ("validation", "val", "valid")
POOL_DIR = "_unlabeled"  # the pool of unlabelled images when data.pool is empty
#: What a split name means, for messages: ``val`` rows count as training data except in refinement.
SPLIT_ROLES = {"train": "train", "val": "validation: merged into train for the SVM, refinement's validation set",
               "test": "test"}


@dataclass(frozen=True)
class Item:
    """One image: absolute ``path``, ``rel`` path in the dataset, its ``label`` and ``group``."""

    path: str
    rel: str
    label: str
    group: str  # the unit the split keeps together ("subdir" mode: the class's first-level subfolder)
    split: str = ""  # "train"/"val"/"test" when the folder layout predefines it
    from_pool: bool = False  # an image of the pool of unlabelled images (labelled by an annotation if it has a label)


@dataclass
class Dataset:
    root: Path
    items: list[Item]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (rel path, action) from annotations
    folders: dict[str, str] = field(default_factory=dict)  # top folder → the split it became (predefined layouts)
    pool: list[Item] = field(default_factory=list)  # images of the pool no annotation has labelled or left out yet
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): image names that are no usable file

    @property
    def labels(self) -> list[str]:
        return sorted({it.label for it in self.items})

    @property
    def predefined_split(self) -> bool:
        return bool(self.items) and all(it.split for it in self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.label] = out.get(it.label, 0) + 1
        return dict(sorted(out.items()))


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def walk_images(folder: Path) -> list[Path]:
    """Every file under ``folder`` with an image extension (sorted, recursive; hidden files and folders left out)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and is_image_file(f))
    return out


def _contained(root: Path, path: str | os.PathLike) -> tuple[str, str]:
    """``(real path, "")`` when ``path`` resolves, every link followed, to something inside ``root`` (a real
    path), else ``("", why not)``: a link loop, a broken link, or a link that leads outside. Never raises."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "", "a symbolic link loop"
        if e.errno == errno.ENOENT:
            return "", "a broken symbolic link (its target does not exist)"
        return "", f"unreadable ({e.strerror or e})"
    if not Path(real).is_relative_to(root):
        return "", "a symbolic link to outside the dataset folder"
    return real, ""


def _image_file(root: Path, path: Path) -> tuple[str, str]:
    """``(real path, "")`` of an image file of the dataset, else ``("", why it is left out)``."""
    real, why = _contained(root, path)
    if why:
        return "", why
    try:
        mode = os.stat(real).st_mode
    except OSError as e:
        return "", f"unreadable ({e.strerror or e})"
    return (real, "") if stat.S_ISREG(mode) else ("", f"{file_kind(mode)}, not an image file")


def _dataset_files(root: Path, folder: Path, skipped: list[tuple[str, str]]) -> list[tuple[Path, str]]:
    """``(path, real path)`` of the image files under ``folder``; what is left out is added to ``skipped``."""
    _, why = _contained(root, folder)
    if why:
        skipped.append((str(folder), f"{why} (a folder: none of its files is used)"))
        return []
    out = []
    for f in walk_images(folder):
        real, why = _image_file(root, f)
        if why:
            skipped.append((str(f), why))
        else:
            out.append((f, real))
    return out


def _class_items(root: Path, class_parent: Path, split: str, skipped: list[tuple[str, str]]) -> list[Item]:
    items = []
    for cdir in sorted(p for p in class_parent.iterdir() if p.is_dir() and _visible(p)):
        for f, real in _dataset_files(root, cdir, skipped):
            rel_in_class = f.relative_to(cdir)
            group = rel_in_class.parts[0] if len(rel_in_class.parts) > 1 else rel_in_class.as_posix()
            items.append(Item(real, f.relative_to(root).as_posix(), cdir.name, f"{cdir.name}/{group}", split))
    return items


def check_images_folder(images_dir: str | os.PathLike) -> None:
    """Refuse an images folder that is a file or does not exist: a look at one path, so a command can answer
    before its imports of a whole run (seconds), as well as :func:`scan_dataset` does."""
    root = Path(images_dir)
    if root.is_file():
        above = f"its class folder's parent, e.g. --images {root.resolve().parent.parent}" if is_image_file(root) else "a folder"
        raise DatasetError(f"the images folder {root} is a file; expected a folder with one subfolder per class",
                           hint=f"pass {above} (DIR/<class>/<image>)")
    if not root.is_dir():
        raise DatasetError(
            f"images folder {root} does not exist",
            hint="pass --images DIR (a folder with one subfolder per class) or set data.images / data.dataset",
        )


def scan_dataset(images_dir: str | os.PathLike, apply_annotations: bool = True, pool: str = "") -> Dataset:
    """List the images of ``images_dir`` with labels, applying ``annotations.csv`` corrections.

    ``pool``: the folder of unlabelled images (``data.pool``; "" = ``images_dir/_unlabeled``), relative
    to ``images_dir`` or absolute inside it; its images are never a class (see the module docstring)."""
    root = Path(images_dir)
    check_images_folder(root)
    root = Path(os.path.realpath(root))
    skipped: list[tuple[str, str]] = []
    folders = _predefined_folders({p.name.lower(): p for p in root.iterdir() if p.is_dir() and _visible(p)})
    if folders:
        items = [it for folder, split in folders.items() for it in _class_items(root, root / folder, split, skipped)]
    else:
        items = _class_items(root, root, "", skipped)
    pool_dir = pool_folder(root, pool)
    unlabelled: list[Item] = []
    if pool_dir is not None:
        pool_rel = pool_dir.relative_to(root).as_posix()
        items = [it for it in items if not PurePosixPath(it.rel).is_relative_to(pool_rel)]
        skipped = [s for s in skipped if not Path(s[0]).is_relative_to(pool_dir)]
        unlabelled = [Item(real, f.relative_to(root).as_posix(), "", f.relative_to(root).as_posix(),
                           "train" if folders else "", from_pool=True) for f, real in _dataset_files(root, pool_dir, skipped)]
    if not items:
        raise _no_class_images(root)
    ds = Dataset(root, items, folders=folders, pool=unlabelled, skipped=skipped)
    return _apply_annotations(ds) if apply_annotations else ds


def _loose_images(folder: Path) -> int:
    """How many images lie directly in ``folder`` (not in a subfolder); 0 for a folder that cannot be read."""
    try:
        return sum(1 for p in folder.iterdir() if p.is_file() and _visible(p) and is_image_file(p.name))
    except OSError:
        return 0


def _no_class_images(root: Path) -> DatasetError:
    """The error for a folder without images in class subfolders: a class folder given, loose images, or none."""
    loose = _loose_images(root)
    if not loose:
        return DatasetError(f"no images found in {root} (nor in its subfolders)",
                            hint="put images (.jpg .png .bmp .gif .webp .tif) in one subfolder per class, e.g. DIR/cats/1.jpg")
    try:
        others = [p for p in root.parent.iterdir() if p.is_dir() and _visible(p) and p != root]
    except OSError:
        others = []
    siblings = [p for p in others if _loose_images(p)]
    if siblings and len(siblings) == len(others):  # the parent holds only folders of images: a dataset
        return DatasetError(f"{root} looks like one class folder ({loose} images, no class subfolders), and its "
                            f"parent holds {len(siblings)} more like it ({', '.join(sorted(p.name for p in siblings)[:3])}"
                            f"{', ...' if len(siblings) > 3 else ''})",
                            hint=f"pass the parent folder: --images {root.parent}")
    return DatasetError(f"{root} holds {loose} images but no class subfolders; expected one subfolder per class",
                        hint=f"move the images into one subfolder per class: {root}/<class>/<image>, "
                             f"e.g. {root / 'cats' / '1.jpg'} and {root / 'dogs' / '2.jpg'}")


def pool_folder(root: Path, pool: str = "") -> Path | None:
    """The pool folder of the dataset at ``root`` (its path normalised, links kept), or None when it does not exist."""
    folder = Path(os.path.normpath(root / (pool or POOL_DIR)))  # the folder's own name, even where it is a link
    if not folder.is_relative_to(root) or folder == root:
        raise DatasetError(f"data.pool must be a folder inside the images folder {root}; got {pool!r}",
                           hint="give a folder name such as _unlabeled: annotations name pool images relative to the images folder")
    if pool and not folder.is_dir():
        raise DatasetError(f"the pool folder {folder} (data.pool) does not exist", hint="create it, or set data.pool = \"\"")
    return folder if folder.is_dir() else None


def _predefined_folders(subdirs: dict[str, Path]) -> dict[str, str]:
    """Top folder name → split, for a predefined layout (empty otherwise; see the module docstring)."""
    if "train" not in subdirs:
        return {}
    val = next((subdirs[n] for n in VALIDATION_DIRS if n in subdirs), None)
    test = subdirs.get("test")
    if test is not None:
        return {subdirs["train"].name: "train", **({val.name: "val"} if val is not None else {}), test.name: "test"}
    return {subdirs["train"].name: "train", val.name: "test"} if val is not None else {}


def _apply_annotations(ds: Dataset) -> Dataset:
    state = current_state(ds.root)
    if not state:
        return ds
    kept, excluded, pool = [], [], []
    for it in ds.items + ds.pool:
        a = state.get(it.rel)
        if a is None:
            (pool if it.from_pool else kept).append(it)
        elif a.action in LABELLING:
            kept.append(replace(it, label=a.label))
        else:
            excluded.append((it.rel, a.action))
    return Dataset(ds.root, kept, excluded, ds.folders, pool, ds.skipped)
