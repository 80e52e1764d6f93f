"""Model files without pickle: ``weights.safetensors`` plus ``model.json``.

``model.json`` holds the format version, the graph, the variable schema, each node's mechanism
type and hyper-parameters (only types in the mechanism registry can be named, so loading never
runs code from the file), and the SHA-256 of the weights file, which detects truncation and
mismatched pairs. Saving writes a complete model to a temporary sibling directory and swaps it
into place, so an interrupted save never replaces a good model with a broken one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ModelFileError
from .graph import CausalGraph
from .mechanisms import REGISTRY, MechanismSpec
from .variables import Schema

if TYPE_CHECKING:
    from .scm import DeepSCM

__all__ = ["FORMAT_VERSION", "load_model", "save_model", "to_jsonable"]

FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def save_model(scm: DeepSCM, path: str | Path) -> Path:
    """Atomically write ``scm`` to directory ``path``; returns the path."""
    from . import __version__

    target = Path(path)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / META_FILE).exists())):
        raise ModelFileError(
            f"{target} exists and is not a deepscm model directory; refusing to overwrite it. "
            "Choose a new path or remove it first"
        )
    tensors = {
        f"{node}/{key}": value.detach().cpu().contiguous().clone()
        for node, mech in scm.mechanisms.items()
        for key, value in mech.state_dict().items()
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        meta = {
            "format": "deepscm",
            "format_version": FORMAT_VERSION,
            "deepscm_version": __version__,
            "graph": str(scm.graph),
            "nodes": scm.graph.nodes,
            "schema": scm.schema.to_list(),
            "mechanisms": {n: m.config() for n, m in scm.mechanisms.items()},
            "fit": scm.fit_info,
            "weights_sha256": _sha256(staging / WEIGHTS_FILE),
        }
        (staging / META_FILE).write_text(json.dumps(to_jsonable(meta), indent=2))
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_model(path: str | Path, device: str | torch.device = "cpu") -> DeepSCM:
    """Read a model directory written by :func:`save_model`."""
    from .scm import DeepSCM
    from .training import resolve_device

    folder = Path(path)
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
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
            f"{folder} has format version {version!r}; this deepscm reads versions up to "
            f"{FORMAT_VERSION}. Upgrade deepscm to load it"
        )
    if not weights_path.is_file():
        raise ModelFileError(f"{folder} is incomplete: {WEIGHTS_FILE} is missing")
    if _sha256(weights_path) != meta.get("weights_sha256"):
        raise ModelFileError(
            f"{weights_path} does not match {META_FILE} (truncated, corrupt or from another "
            "model); re-save the model"
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"cannot read {weights_path}: {err}") from None
    try:
        graph = CausalGraph(meta["graph"], nodes=meta["nodes"])
        scm = DeepSCM(graph)
        scm.schema = Schema.from_list(meta["schema"])
        for node in graph.nodes:
            scm.mechanisms[node] = _rebuild_mechanism(node, meta["mechanisms"][node], tensors)
        scm.fit_info = meta.get("fit", {})
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{meta_path} is inconsistent: {type(err).__name__}: {err}") from None
    return scm.to(resolve_device(device))


def _rebuild_mechanism(node: str, config: dict[str, Any], tensors: dict[str, torch.Tensor]):
    cls = REGISTRY.get(config["type"])
    if cls is None:
        raise ModelFileError(
            f"node {node!r} uses mechanism {config['type']!r}, which this deepscm does not know; "
            f"known: {sorted(REGISTRY)}"
        )
    mech = cls(**config["hparams"])
    mech.build(MechanismSpec(**config["spec"]))
    mech.load_extra_config(config.get("state", {}))
    prefix = f"{node}/"
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        mech.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"weights of node {node!r} do not match its mechanism: {err}") from None
    mech.eval()
    return mech


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` so that one complete model is always on disk."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    backup.rmdir()
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _sha256(path: Path) -> str:
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
