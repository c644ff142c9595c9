"""Pages as a person sees them: headless Chromium (Debian's `chromium`, installed by `make
browser`) loads a page from a file, with the network unreachable, and reports what it got.

`load(page)` returns the DOM after the load event (with every <img>'s load state marked by
an injected script), every network request the page made (Chromium's net log) and the
console; `screenshot(page, png)` writes what a window shows. Tests skip with a reason when
no Chromium is installed.
"""
import json
import os
import pathlib
import shutil
import subprocess
from dataclasses import dataclass

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")
# Chromium's own background traffic is off, and any host name resolves to nothing.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-client-side-phishing-detection",
         "--disable-features=Translate,OptimizationHints,MediaRouter,SpellCheck",
         "--host-resolver-rules=MAP * ~NOTFOUND")
MARK_IMAGES = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  imgs.forEach(function (img, i) {
    img.setAttribute('data-test-loaded', img.complete && img.naturalWidth > 0 ? 'yes' : 'no');
    img.setAttribute('data-test-size', img.naturalWidth + 'x' + img.naturalHeight);
  });
  document.body.setAttribute('data-test-done', String(imgs.length));
});
</script>"""


def chromium() -> str:
    """The Chromium executable; skips the test with a reason when there is none."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (make browser, or apt-get install chromium)")


@dataclass
class Loaded:
    dom: str
    page_requests: list  # URLs the page itself asked the network for (file:// and data: excluded)


def _run(args, timeout=120):
    env = {**os.environ, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([chromium(), *FLAGS, *args], capture_output=True, text=True, timeout=timeout, env=env)


def load(page: pathlib.Path, tmp_path: pathlib.Path, wait_ms: int = 3000) -> Loaded:
    """Load a copy of `page` (with the image-marking script before </body>) and return the
    DOM after the load event and the network requests the page made."""
    text = page.read_text(encoding="utf-8")
    assert "</body>" in text
    copy = tmp_path / f"marked-{page.name}"
    copy.write_text(text.replace("</body>", MARK_IMAGES + "</body>", 1), encoding="utf-8")
    netlog = tmp_path / f"netlog-{page.stem}.json"
    out = _run([f"--log-net-log={netlog}", f"--virtual-time-budget={wait_ms}", "--dump-dom", copy.as_uri()])
    assert out.returncode == 0, out.stderr[-2000:]
    return Loaded(dom=out.stdout, page_requests=page_requests(netlog))


def page_requests(netlog: pathlib.Path) -> list:
    """URLs requested on behalf of a file:// page (its network isolation key), other than
    file: and data: URLs."""
    events = json.loads(netlog.read_text()).get("events", [])
    urls = set()
    for event in events:
        params = event.get("params") or {}
        if str(params.get("network_isolation_key", "")).startswith("file://"):
            url = params.get("url", "")
            if url and not url.startswith(("file:", "data:")):
                urls.add(url)
    return sorted(urls)


def screenshot(page: pathlib.Path, png: pathlib.Path, width: int = 1400, height: int = 2400,
               wait_ms: int = 3000) -> pathlib.Path:
    """What a `width` x `height` window shows of `page`, as a PNG."""
    out = _run([f"--screenshot={png}", f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
                page.as_uri()])
    assert out.returncode == 0 and png.is_file(), out.stderr[-2000:]
    return png
