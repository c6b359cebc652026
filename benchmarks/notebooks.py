"""Wall time and peak RSS of every notebook in notebooks/, run by nbconvert in a subprocess.

Quick mode sets INFERNET_QUICK=1 (what CI and Binder run), full mode INFERNET_QUICK=0. Peak RSS is
that of the whole process tree (nbconvert and its kernel), sampled every 0.1 s.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .common import PYTHON, Config, Row, python_env, run_measured


def run(cfg: Config) -> list[Row]:
    folder = Path(cfg.notebooks_dir)
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        return [Row("notebooks", "no notebooks", None, "s", note=f"no *.ipynb in {folder}")]
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for mode in cfg.notebook_modes:
            for nb in notebooks:
                cmd = [PYTHON, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", out,
                       f"--ExecutePreprocessor.timeout={cfg.notebook_timeout}", str(nb)]
                env = python_env(INFERNET_QUICK=1 if mode == "quick" else 0)
                if cfg.data_dir:
                    env["INFERNET_DATA_DIR"] = str(cfg.data_dir)
                r = run_measured(cmd, env=env, cwd=folder, timeout=cfg.notebook_timeout + 60)
                ok = r["returncode"] == 0 and not r["timed_out"]
                note = "" if ok else ("timed out" if r["timed_out"] else "FAILED: " + r["output"].strip()[-200:].replace("\n", " "))
                rows.append(Row("notebooks", f"{nb.name} ({mode})", r["seconds"], "s", extra={
                    "peak_rss_mib": r["peak_rss"] / 2**20, "mode": mode, "ok": ok}, note=note))
    return rows
