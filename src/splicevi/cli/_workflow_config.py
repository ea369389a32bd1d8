"""The workflow's configuration check: one pass of the JSON schema, with the choices the package defines.

``workflow/rules/common.smk`` calls :func:`check_config` once at parse time. The schema file
(``workflow/schemas/config.schema.yaml``) holds types, ranges, defaults and descriptions; the
choices of an option the package defines in one place (a registry or a constants tuple) are not
repeated there but set from the package here (:func:`choices`), so a newly registered likelihood or
reader is accepted by the workflow without touching the schema.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

#: Config keys renamed since a release: old key path → new key path (an old config still runs, with a note).
RENAMED_KEYS = {
    # "sample sheet" means a cohort's table (config key `samples`); the per-cell file table is the cell sheet.
    ("input", "sample_sheet"): ("input", "cell_sheet"),
}


def rename_old_keys(config: dict) -> list[str]:
    """Move the values of renamed keys (:data:`RENAMED_KEYS`) to their new names; one note per move."""
    notes = []
    for old, new in RENAMED_KEYS.items():
        parent = config.get(old[0]) if len(old) == 2 else config
        if not isinstance(parent, dict) or old[-1] not in parent:
            continue
        target = config.setdefault(new[0], {}) if len(new) == 2 else config
        if new[-1] in target:
            continue  # both given: the new key wins and the check reports the old one as unknown
        target[new[-1]] = parent.pop(old[-1])
        notes.append(
            f"config key '{'.'.join(old)}' is now '{'.'.join(new)}' (read as such; rename it in your config)"
        )
    return notes


def choices() -> dict[tuple[str, ...], tuple]:
    """Config key path → allowed values, for the options whose choices the package defines."""
    from ..data.formats import format_choices
    from ..distributions.likelihoods import likelihood_names
    from ..module.choices import OPTION_CHOICES
    from ..stats.choices import DS_DESIGNS, FDR_METHODS

    model = {
        key: OPTION_CHOICES[key]
        for key in (
            "modality_weights",
            "modality_penalty",
            "gene_likelihood",
            "splicing_encoder_architecture",
            "splicing_decoder_architecture",
            "expression_architecture",
            "splicing_encoder_weighting",
            "pool_mode",
        )
    }
    return {
        ("input", "junction_format"): format_choices("junctions"),
        ("input", "gene_format"): format_choices("genes"),
        ("model", "splicing_loss_type"): likelihood_names(),
        **{("model", key): values for key, values in model.items()},
        ("ds", "design"): DS_DESIGNS,
        ("ds", "fdr_method"): FDR_METHODS,
    }


def load_schema(path: str | Path) -> dict:
    """The config schema with :func:`choices` set as the ``enum`` of each key (``null`` kept where allowed)."""
    import yaml

    with open(path) as fh:
        schema = yaml.safe_load(fh)
    for keys, values in choices().items():
        node = schema
        for key in keys:
            node = node["properties"][key]
        types = node.get("type", [])
        nullable = "null" in types if isinstance(types, list) else types == "null"
        node["enum"] = [*values, None] if nullable else list(values)
    return schema


def config_errors(config: dict, schema: dict) -> list[str]:
    """One short line per problem of ``config`` against ``schema``, naming the key."""
    import jsonschema

    lines = []
    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    for err in sorted(errors, key=lambda e: [str(p) for p in e.path]):
        key = ".".join(str(p) for p in err.path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            lines.extend(f"config key '{f'{key}.' if key else ''}{name}': unknown key" for name in extra)
        elif err.validator == "required":
            lines.append(f"config key '{key or '<top level>'}': {err.message}")
        elif err.validator == "anyOf" and err.schema.get("description"):
            # jsonschema only says "not valid under any of the given schemas"; the key's description
            # names the values it takes.
            lines.append(f"config key '{key}': {err.instance!r} is not allowed; {err.schema['description']}")
        else:
            lines.append(f"config key '{key}': {err.message}")
    return lines


def fill_defaults(config: dict, schema: dict) -> None:
    """Set every key the config leaves out to the schema's ``default`` (nested objects too), in place."""
    for key, prop in schema.get("properties", {}).items():
        if key not in config and "default" in prop:
            config[key] = copy.deepcopy(prop["default"])
        if isinstance(config.get(key), dict) and "properties" in prop:
            fill_defaults(config[key], prop)
        elif isinstance(config.get(key), list) and "properties" in prop.get("items", {}):
            for item in config[key]:
                if isinstance(item, dict):
                    fill_defaults(item, prop["items"])


def check_config(config: dict, schema_path: str | Path) -> list[str]:
    """Validate ``config`` (the one pass) and, when it is valid, fill in the schema's defaults.

    Returns
    -------
    The problems, one line each (empty when the config is valid).
    """
    schema = load_schema(schema_path)
    for note in rename_old_keys(config):
        print(note, file=sys.stderr)
    errors = config_errors(config, schema)
    if not errors:
        fill_defaults(config, schema)
    return errors
