"""Model files without pickle: a pure format layer (it knows nothing about models).

A *bundle* is a directory with ``model.json`` (metadata) and one safetensors weights file.
``model.json`` records the format version, the name of the weights file and one SHA-256 over
the weights **and** the canonical metadata, so an edited, truncated or mismatched file is
refused (:class:`ModelFileError`) instead of loading as a different model.

Saving owns exactly two files and never touches others in the directory. The weights file
is named by its content (``weights-<sha>.safetensors``) and written first; ``model.json`` is
then replaced atomically, which is the commit point; finally the previous weights file is
removed. An interruption at any step leaves the previous model (or none) loadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ModelFileError

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "check_writable",
    "read_bundle",
    "to_jsonable",
    "write_bundle",
]

FORMAT_VERSION = 2
META_FILE = "model.json"
_WEIGHTS_PREFIX = "weights-"
_WEIGHTS_SUFFIX = ".safetensors"


def check_writable(path: str | Path) -> Path:
    """Raise :class:`ModelFileError` now, naming ``path``, if a bundle cannot be written
    there (so a long fit is not lost at the end)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ModelFileError(f"{target} exists and is a file; give a directory for the model")
    probe = target if target.exists() else next((p for p in target.parents if p.exists()), Path("."))
    if not probe.is_dir():
        raise ModelFileError(f"cannot write the model to {target}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ModelFileError(f"cannot write the model to {target}: {probe} is not writable")
    return target


def write_bundle(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``tensors`` and ``meta`` (JSON-able after :func:`to_jsonable`) to directory ``path``."""
    target = check_writable(path)
    staged: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        old_weights = _current_weights(target)
        staged.append(_temp_path(target, _WEIGHTS_SUFFIX))
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(staged[0]))
        weights_sha = _sha256_file(staged[0])
        weights_name = f"{_WEIGHTS_PREFIX}{weights_sha[:16]}{_WEIGHTS_SUFFIX}"
        body = to_jsonable(dict(meta))
        body.update(format="deepscm", format_version=FORMAT_VERSION, weights_file=weights_name)
        body["sha256"] = _bundle_sha(body, weights_sha)
        staged.append(_temp_path(target, ".json"))
        staged[1].write_text(json.dumps(body, indent=2))
        _publish(staged[0], target / weights_name)
        _publish(staged[1], target / META_FILE)  # the commit point
    except OSError as err:
        raise ModelFileError(f"cannot write the model to {target}: {err.strerror or err}") from None
    finally:
        for path_ in staged:
            path_.unlink(missing_ok=True)
    if old_weights is not None and old_weights.name != weights_name:
        old_weights.unlink(missing_ok=True)
    return target


def read_bundle(path: str | Path, model: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a bundle; returns ``(tensors, meta)``. ``model``: the class whose files
    this must be (``meta["model"]``; a ``DeepSCM`` file has none), else :class:`ModelFileError`
    names the class that wrote it."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ModelFileError(f"{folder} is not a deepscm model: {META_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{meta_path} is corrupt (not valid JSON: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != "deepscm":
        raise ModelFileError(f"{meta_path} is not a deepscm model file")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} has format version {version!r}; this deepscm reads version "
            f"{FORMAT_VERSION}. Upgrade deepscm to load it"
        )
    if version < FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} was written in the older format {version}, whose metadata is not "
            "checksummed; fit and save the model again with this deepscm"
        )
    name = meta.get("weights_file")
    if not (isinstance(name, str) and name.startswith(_WEIGHTS_PREFIX) and "/" not in name and "\\" not in name):
        raise ModelFileError(f"{meta_path} names no valid weights file ({name!r})")
    weights_path = folder / name
    if not weights_path.is_file():
        raise ModelFileError(f"{folder} is incomplete: {name} is missing")
    if _bundle_sha(meta, _sha256_file(weights_path)) != meta.get("sha256"):
        raise ModelFileError(
            f"{folder} fails its checksum: {META_FILE} or {name} was edited, truncated or comes "
            "from another model. Re-save the model from the fitted object"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"cannot read {weights_path}: {err}") from None
    if model is not None and meta.get("model") != model:
        raise ModelFileError(f"{path} holds a {meta.get('model', 'DeepSCM')!r} model, not {model}; load it "
                             "with the class that saved it (e.g. deepscm.DeepSCM.load)")
    return tensors, meta


def _bundle_sha(meta: Mapping[str, Any], weights_sha: str) -> str:
    """SHA-256 over the weights' digest and the canonical JSON of ``meta`` without its own
    ``sha256`` field."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((weights_sha + "\n" + canonical).encode()).hexdigest()


def _current_weights(folder: Path) -> Path | None:
    try:
        meta = json.loads((folder / META_FILE).read_text())
        name = meta.get("weights_file")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(name, str) and name.startswith(_WEIGHTS_PREFIX) and "/" not in name:
        return folder / name
    return None


def _temp_path(folder: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(prefix=".deepscm-saving-", suffix=suffix, dir=folder)
    os.close(handle)
    return Path(name)


def _publish(staging: Path, final: Path) -> None:
    """Give the staged file the permissions the umask allows (mkstemp makes it 0600) and
    rename it into place atomically."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o666 & ~umask)
    os.replace(staging, final)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def to_jsonable(value: Any, drop: Collection[str] = ()) -> Any:
    """``value`` with numpy scalars/arrays as Python values, non-finite floats as ``None``
    and dict keys as strings, so that ``json.dumps`` accepts it; keys in ``drop`` are left out
    at every depth."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, drop) for v in value]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return to_jsonable(value.tolist(), drop)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value
