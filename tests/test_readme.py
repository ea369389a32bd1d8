"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - the point of the test
    ds, events, psi, mdata = namespace["ds"], namespace["events"], namespace["psi"], namespace["mdata"]
    assert {"proba_ds", "effect_size", "is_ds_fdr", "event_id"} <= set(ds.columns)
    assert len(events) == ds["event_id"].nunique()
    assert psi.shape == mdata["splicing"].shape
    assert (tmp_path / "my_model" / "model.pt").exists()
