"""A venv that is the test venv with one package swapped: an unsupported sentry-sdk, as a user may have.

Built once per package spec and test venv, cached under ``$OGZ_CACHE/overlays``: the overlay's own
site-packages holds only the swapped package (``pip install --target``, no dependencies), and a
``.pth`` file adds the test venv's site-packages behind it, so everything else (the project,
OpenTelemetry, uvicorn) is the test venv's. Its ``bin`` has the console scripts the tests launch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["overlay_venv"]

_SCRIPTS = {
    "opentelemetry-instrument": "from opentelemetry.instrumentation.auto_instrumentation import run\nrun()",
    "uvicorn": "from uvicorn.main import main\nmain()",
    "otel-gatewayz": "import sys\nfrom otel_gatewayz._cli import main\nsys.exit(main())",
}


def overlay_venv(spec: str) -> Path:
    """The bin directory of the test venv with ``spec`` (e.g. ``sentry-sdk==2.30.0``) installed over it."""
    base_site = sysconfig.get_paths()["purelib"]
    key = hashlib.sha256(f"{spec}\n{base_site}\n{Path(__file__).read_text()}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("OGZ_CACHE") or Path.home() / ".cache" / "otel_gatewayz")
    venv = cache / "overlays" / f"{spec.replace('=', '').replace('<', '').replace('>', '')}-{key}"
    bin_dir = venv / "bin"
    if (venv / ".complete").exists():
        return bin_dir
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), spec],
        check=True,
    )
    # addsitedir (not a plain path line) so the test venv's own .pth files (the editable project) load too.
    (site / "zz_test_venv.pth").write_text(f"import site; site.addsitedir({base_site!r})\n")
    for name, body in _SCRIPTS.items():
        script = bin_dir / name
        script.write_text(f"#!{bin_dir / 'python'}\n{body}\n")
        script.chmod(0o755)
    (venv / ".complete").touch()
    return bin_dir
