"""docs/python.md's example runs as written: a watched PyTorch training loop that writes a run
folder with its report."""

import contextlib
import io
import os
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def example():
    text = DOC.read_text()
    section = text[text.index("## Watch a training loop"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_example_writes_a_report(tmp_path):
    code = example()
    assert "gradscope.watch(model" in code and "w.step(loss)" in code
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {})
    finally:
        os.chdir(cwd)
    run = tmp_path / "runs" / "exp"
    assert {"config.toml", "metrics.jsonl", "summary.json", "report.html"} <= {p.name for p in run.iterdir()}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4  # steps 0, 10, 20, 30 of 32
    assert out.getvalue().startswith("gradient at layer 0 is ")
