"""Reading a saved model's ``model.pt`` without running code from it.

scvi-tools reads ``model.pt`` with ``torch.load(..., weights_only=False)``: a full unpickler, so a
file carrying an object with a ``__reduce__`` runs arbitrary code on load. Models are shared between
labs, so :func:`read_model_file` reads the file with ``weights_only=True`` and an allow-list of the
types a saved SPLICEVI model holds (tensors, plain containers, numpy arrays for ``var_names`` and the
registry, the pandas frames of the training history), checks its layout and versions, and
:func:`serve_checked_model_file` hands that checked dictionary to scvi-tools' own ``load`` in place
of its unsafe second read. A file needing any other type is refused with a one-line error naming it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import types
import warnings
import zipfile
from collections.abc import Iterator

import torch

log = logging.getLogger("splicevi")

#: Keys of the dictionary scvi-tools (1.x) saves in ``model.pt``.
MODEL_KEYS = ("model_state_dict", "var_names", "attr_dict")

#: The globals (``module.name``) a saved model may reference. Found by saving models with scvi-tools
#: 1.4 and disassembling ``data.pkl``: torch's tensor/parameter rebuilders, plain containers (the
#: registry is a ``defaultdict``, which torch's own weights_only unpickler cannot fill), numpy object
#: arrays (``var_names``, category mappings) and the pandas frames of the training history. numpy
#: 1.x and 2.x name the array reconstructor differently: both are listed. Every entry builds data;
#: none can run an arbitrary function. Storages are resolved by torch before this list is consulted.
ALLOWED_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.defaultdict",
        "builtins.dict",
        "builtins.list",
        "builtins.set",
        "builtins.frozenset",
        "builtins.tuple",
        "builtins.bytes",
        "builtins.bytearray",
        "builtins.slice",
        "builtins.complex",
        "_codecs.encode",  # how protocol 2 rebuilds bytes (torch's weights_only allows it too)
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
        "torch.device",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray.scalar",
        "pandas.core.frame.DataFrame",
        "pandas.core.series.Series",
        "pandas.core.indexes.base.Index",
        "pandas.core.indexes.range.RangeIndex",
        "pandas.core.indexes.base._new_Index",
        "pandas.core.internals.managers.BlockManager",
        "pandas.core.internals.managers.SingleBlockManager",
        "pandas._libs.internals._unpickle_block",
    }
)

#: numpy 2 arrays carry their dtype's class (numpy.dtypes.Float64DType, ObjectDType, ...): data types.
ALLOWED_MODULE_PREFIXES = ("numpy.dtypes.",)


class ModelFileError(ValueError):
    """``model.pt`` cannot be used: refused (unsafe), unreadable or not a SPLICEVI model (exit 3)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of :data:`ALLOWED_GLOBALS`.

    Every callable a pickle can run (REDUCE, NEWOBJ, BUILD's ``__setstate__``, extension codes) is
    first looked up through ``find_class``; refusing there means nothing from the file ever runs.
    """

    def find_class(self, module: str, name: str):
        # protocol 2 names Python 2 modules (__builtin__.slice): check the name Python 3 resolves
        import _compat_pickle

        mod3, name3 = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        mod3 = _compat_pickle.IMPORT_MAPPING.get(mod3, mod3)
        qualified = f"{mod3}.{name3}"
        if qualified in ALLOWED_GLOBALS or qualified.startswith(ALLOWED_MODULE_PREFIXES) and "." not in name:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"GLOBAL {qualified} is not allowed in a model file")


def _restricted_pickle_module() -> types.ModuleType:
    """A stand-in for the ``pickle`` module (``torch.load(pickle_module=...)``) with the restricted unpickler."""
    module = types.ModuleType("splicevi_restricted_pickle")
    module.Unpickler = _RestrictedUnpickler
    module.UnpicklingError = pickle.UnpicklingError

    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()

    module.load = load
    return module


def read_model_file(path: str | os.PathLike) -> dict:
    """Read and check ``model.pt`` without executing anything from it.

    Parameters
    ----------
    path
        The ``model.pt`` of a folder written by :meth:`SPLICEVI.save`.

    Returns
    -------
    dict
        ``model_state_dict``, ``var_names`` and ``attr_dict``, on the CPU.

    Raises
    ------
    ModelFileError
        The file needs a type outside the allow-list (it could run code), is empty, truncated or not
        a ``torch.save`` archive, or does not hold a SPLICEVI model.
    """
    path = os.fspath(path)

    def unreadable(detail: str) -> ModelFileError:
        return ModelFileError(
            f"{path} cannot be read: the file is empty, truncated or not a saved model ({detail}); "
            "save or train the model again (or copy the whole model folder again)"
        )

    if os.path.getsize(path) == 0:
        raise unreadable("0 bytes")
    if not zipfile.is_zipfile(path):
        raise unreadable("not a torch.save archive")
    try:
        # weights_only=False only because torch's own allow-list unpickler cannot rebuild the
        # registry's defaultdict; the restricted unpickler takes its place.
        saved = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module()
        )
    except pickle.UnpicklingError as err:
        # weights_only refuses a global or an opcode outside the allow-list; name it in one line
        what = _refused_name(str(err))
        raise ModelFileError(_refusal(path, what)) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, KeyError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise unreadable(detail) from None
    check_layout(path, saved)
    return saved


def _refused_name(message: str) -> str:
    """The global or class named by torch's weights_only refusal (its message spans many lines)."""
    import re

    for pattern in (r"GLOBAL (\S+)", r"but got <class '([^']+)'>"):
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return "an object outside the allow-list"


def _refusal(path: str, what: str) -> str:
    return (
        f"{path} refused: it needs {what}, which a saved SPLICEVI model never holds; loading it could run "
        "code from the file. Use model files only from sources you trust, or train the model again"
    )


def check_layout(path: str, saved: object) -> None:
    """Raise :class:`ModelFileError` unless ``saved`` is a SPLICEVI model of a version we can read.

    A model saved by another scvi-tools or splicevi version loads with a warning naming both versions
    (the layout checks here and the state-dict check of the load refuse what cannot work).
    """
    if not isinstance(saved, dict) or not all(k in saved for k in MODEL_KEYS):
        kind = (
            "a bare state dict"
            if isinstance(saved, dict)
            and saved
            and all(isinstance(v, torch.Tensor) for k, v in saved.items() if k != "pyro_param_store")
            else f"a {type(saved).__name__}"
        )
        raise ModelFileError(
            f"{path} is not a saved scvi-tools model ({kind}, without the keys {', '.join(MODEL_KEYS)}); "
            "give the folder written by `splicevi train` / SPLICEVI.save"
        )
    state, attrs = saved["model_state_dict"], saved["attr_dict"]
    # scvi-tools adds an (empty) "pyro_param_store" dict next to the module's tensors
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) or k == "pyro_param_store" for k, v in state.items()
    ):
        raise ModelFileError(f"{path}: model_state_dict is not a dictionary of tensors; not a saved model")
    registry = attrs.get("registry_") if isinstance(attrs, dict) else None
    if not isinstance(registry, dict) or "init_params_" not in attrs:
        raise ModelFileError(
            f"{path}: attr_dict lacks registry_ or init_params_; not a saved scvi-tools model"
        )
    name = registry.get("model_name")
    if name is not None and name != "SPLICEVI":
        raise ModelFileError(
            f"{path} holds a {name} model, not SPLICEVI; give a model saved by `splicevi train`"
        )
    _warn_versions(path, registry.get("scvi_version"), attrs.get("splicevi_version_"))


def _minor(version: str | None) -> tuple[str, ...] | None:
    return tuple(str(version).split(".")[:2]) if version else None


def _warn_versions(path: str, scvi_version: str | None, splicevi_version: str | None) -> None:
    import scvi

    from splicevi import __version__

    notes = []
    if _minor(scvi_version) != _minor(scvi.__version__):
        notes.append(f"scvi-tools {scvi_version or 'unknown'} (this is {scvi.__version__})")
    if splicevi_version is None:
        notes.append(f"a splicevi version that did not record itself (this is {__version__})")
    elif splicevi_version != __version__:
        notes.append(f"splicevi {splicevi_version} (this is {__version__})")
    if notes:
        message = (
            f"{path} was saved by {' and '.join(notes)}; its layout checks passed, but results may "
            "differ from the original run: retrain with this version to be sure"
        )
        log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)


@contextlib.contextmanager
def serve_checked_model_file(path: str | os.PathLike, saved: dict) -> Iterator[None]:
    """While active, ``torch.load`` of ``path`` returns ``saved`` (already checked) and never unpickles.

    scvi-tools' ``load`` reads ``model.pt`` itself with ``weights_only=False``; serving the checked
    dictionary closes that door without copying scvi-tools' loading code (and without a window in
    which the file could be swapped between the check and the read). Any other ``torch.load`` in the
    block is forced to ``weights_only=True``.
    """
    target = os.path.realpath(path)
    real_load = torch.load

    def _load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and os.path.realpath(f) == target:
            return saved
        kwargs["weights_only"] = True
        kwargs.pop("pickle_module", None)
        return real_load(f, *args, **kwargs)

    torch.load = _load
    try:
        yield
    finally:
        torch.load = real_load
