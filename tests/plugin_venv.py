"""Real plugin packages, built and pip-installed into a scratch virtual environment.

The scratch environment sees the test venv's packages (dijkwacht included, through a .pth
file), so only the plugins differ from the test venv; pip installs them offline, from their
source directories, without build isolation (setuptools comes from the test extra).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path


def project(root: Path, dist: str, entry_points: dict[str, str], files: dict[str, str], version: str = "1.0.0") -> Path:
    """Write a setuptools project: `files` maps paths under the package root to their text."""
    where = root / dist
    where.mkdir(parents=True)
    packages = sorted({name.split("/")[0] for name in files if "/" in name})
    eps = "\n".join(f'{name} = "{target}"' for name, target in entry_points.items())
    (where / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "{version}"

        [project.entry-points.dijkwacht]
        """) + eps + f"\n\n[tool.setuptools]\npackages = {packages!r}\n\n[tool.setuptools.package-data]\n"
        + "".join(f'{p} = ["*.toml"]\n' for p in packages)
    )
    for name, text in files.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return where


class PluginVenv:
    def __init__(self, root: Path, projects: list[Path]) -> None:
        self.root = root
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        self.python = root / "bin" / "python"
        site = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
        outer = sysconfig.get_paths()["purelib"]
        (Path(site.stdout.strip()) / "_test_venv.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
        done = self.run("-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", *map(str, projects), timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DIJKWACHT_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH", "VIRTUAL_ENV")}
        return env

    def run(self, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], capture_output=True, text=True, timeout=timeout, env=self.env(), **kwargs)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([str(self.python), *args], env=self.env(), **kwargs)
