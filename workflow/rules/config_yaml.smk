# Read before the configfile directive (see Snakefile): Snakemake's own message for a YAML syntax error in
# config/config.yaml names neither the file nor the line.


def _check_yaml(path):
    """Stop on a YAML syntax error naming the file and line (Snakemake's message names neither)."""
    import yaml
    from snakemake.exceptions import WorkflowError

    try:
        with open(path, encoding="utf-8") as fh:
            yaml.safe_load(fh)
    except FileNotFoundError:
        return  # the configfile directive decides (not needed when --configfile is given)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise WorkflowError(
            f"{where}: not valid YAML ({problem}). Fix: check indentation (spaces, no tabs), colons and quotes there"
        ) from None


_check_yaml("config/config.yaml")
