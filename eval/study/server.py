"""``splice study serve``: the 2AFC study as a local web page for lab sessions.

A small :mod:`http.server` application bound to 127.0.0.1 only. It shows the trials of an
exported study (:mod:`eval.study.lab`) one at a time with the question of PROTOCOL.md
(Splice paper, Tumanyan et al., CVPR 2022, Table 1), the progress, and a link to stop and
continue later. Answers are plain form POSTs (buttons, or the keys 1/2 and the arrow keys),
so the page works without JavaScript too.

Requests are checked before anything is read or written: the Host header must name this
server (DNS rebinding), a POST's Origin must be this server (cross-site forms), rater names
match a pattern, trial ids must be the rater's current trial, and images are served only
for ids listed in the export, from its images/ folder. The only file written is
``<study>/lab/results.csv``, whose name no request can change.
"""

from __future__ import annotations

import html
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from .lab import LabStudy, RequestError, check_rater
from .question import INSTRUCTIONS, QUESTION

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 2048
_IMAGE_PATH = re.compile(r"^/images/([0-9a-f]{16})\.png$")

_CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 0 auto; padding: 8px 16px; }
header { display: flex; align-items: center; gap: 16px; }
progress { flex: 1; height: 14px; }
.question { font-size: 1.15em; font-weight: bold; }
.refs, .alts { display: flex; gap: 24px; justify-content: center; flex-wrap: wrap; }
figure { margin: 0; text-align: center; }
figure img { max-width: 300px; max-height: 300px; }
.alts button { background: #fff; border: 3px solid #ccc; border-radius: 8px; padding: 8px; cursor: pointer; }
.alts button:hover, .alts button:focus { border-color: #1a73e8; }
.alts img { max-width: 480px; max-height: 420px; display: block; margin-bottom: 6px; }
.hint { color: #555; text-align: center; }
"""

_JS = """
(function () {
  var sent = false;
  document.addEventListener('submit', function (e) { if (sent) { e.preventDefault(); } sent = true; });
  document.addEventListener('keydown', function (e) {
    var id = {'1': 'choose-left', 'ArrowLeft': 'choose-left', '2': 'choose-right', 'ArrowRight': 'choose-right'}[e.key];
    var button = id && document.getElementById(id);
    if (button && !sent) { e.preventDefault(); button.click(); }
  });
  function mark() {
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    document.body.setAttribute('data-images-loaded', String(ok));
    document.body.setAttribute('data-images-total', String(imgs.length));
  }
  window.addEventListener('load', mark);
})();
"""

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; script-src 'self'; style-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make form posts send "Origin: null"
    "X-Frame-Options": "DENY",
}


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/study.css"><script src="/static/study.js" defer></script></head>
<body>
{body}
</body></html>
"""


def start_page(fixed_rater: str | None) -> str:
    return _page("Image comparison study", f"""<h1>Image comparison study</h1>
<p>{html.escape(QUESTION)}</p>
<p>{html.escape(INSTRUCTIONS)}</p>
<p>You can stop at any time and continue later with the same name.</p>
<form method="get" action="/trial">
  <label>Your name or participant code:
    <input name="rater" required pattern="[A-Za-z0-9][A-Za-z0-9_.\\-]{{0,39}}" maxlength="40" autofocus></label>
  <button type="submit" id="start">Start</button>
</form>""")


def trial_page(study: LabStudy, rater: str) -> str:
    trial = study.next_trial(rater)
    done, total = study.progress(rater)
    r = html.escape(rater)
    if trial is None and total == 0:
        return _page("Thank you", f"""<h1>Thank you, {r}!</h1>
<p id="progress">Every question of this study has all the answers it needs already. You can close this page.</p>""")
    if trial is None:
        return _page("Thank you", f"""<h1>Thank you, {r}!</h1>
<p id="progress">All {total} questions answered. You can close this page.</p>""")
    img = lambda image_id, alt: f'<img src="/images/{image_id}.png" alt="{alt}">'  # noqa: E731
    return _page(f"Question {done + 1} of {total}", f"""<header>
  <span id="progress">Question {done + 1} of {total}</span>
  <progress value="{done}" max="{total}">{done}/{total}</progress>
  <a href="/" id="stop">Stop and continue later</a>
</header>
<p class="question">{html.escape(QUESTION)}</p>
<div class="refs">
  <figure><figcaption>A</figcaption>{img(trial.ref_a, "image A")}</figure>
  <figure><figcaption>B</figcaption>{img(trial.ref_b, "image B")}</figure>
</div>
<form method="post" action="/answer" class="alts">
  <input type="hidden" name="rater" value="{r}">
  <input type="hidden" name="trial" value="{trial.trial_id}">
  <button type="submit" name="choice" value="left" id="choose-left">{img(trial.left, "left option")}Left</button>
  <button type="submit" name="choice" value="right" id="choose-right">{img(trial.right, "right option")}Right</button>
</form>
<p class="hint">Click an image, or press 1 / &larr; for the left one and 2 / &rarr; for the right one.</p>""")


def _error_page(status: int, message: str) -> str:
    body = f'<h1>{status}</h1><p id="error">{html.escape(message)}</p><p><a href="/">Start page</a></p>'
    return _page("Error", body)


def make_handler(study: LabStudy, fixed_rater: str | None):
    """The request handler class for ``study`` (one rater name only when ``fixed_rater`` is set)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "study"
        sys_version = ""

        def log_message(self, fmt, *args):  # stdlib writes to stderr unconditionally; route through logging
            log.debug("%s " + fmt, self.address_string(), *args)

        # -- responses -----------------------------------------------------------------------
        def _send(self, status: int, body: bytes, ctype: str, cache: str = "no-store", extra=None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _html(self, text: str, status: int = 200) -> None:
            self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

        def _redirect(self, location: str) -> None:
            self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", extra={"Location": location})

        def _fail(self, status: int, message: str) -> None:
            self._html(_error_page(status, message), status)

        # -- checks --------------------------------------------------------------------------
        def _host_ok(self) -> bool:
            port = self.server.server_address[1]
            allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
            if self.headers.get("Host", "") not in allowed:
                self._fail(HTTPStatus.FORBIDDEN, "unexpected Host header; open the address the server printed")
                return False
            return True

        def _rater(self, name: str) -> str:
            rater = check_rater(name)
            if fixed_rater is not None and rater != fixed_rater:
                raise RequestError("this session is for another rater", status=403)
            return rater

        # -- routes --------------------------------------------------------------------------
        def do_HEAD(self):  # noqa: N802
            self.do_GET()

        def do_GET(self):  # noqa: N802
            if not self._host_ok():
                return
            url = urlsplit(self.path)
            try:
                if url.path == "/":
                    if fixed_rater is not None:
                        return self._redirect(f"/trial?rater={quote(fixed_rater)}")
                    return self._html(start_page(fixed_rater))
                if url.path == "/trial":
                    query = parse_qs(url.query, max_num_fields=4)
                    rater = self._rater((query.get("rater") or [""])[0])
                    return self._html(trial_page(study, rater))
                if url.path == "/static/study.css":
                    return self._send(200, _CSS.encode(), "text/css; charset=utf-8", cache="max-age=600")
                if url.path == "/static/study.js":
                    return self._send(200, _JS.encode(), "text/javascript; charset=utf-8", cache="max-age=600")
                m = _IMAGE_PATH.match(url.path)
                path = study.image_path(m.group(1)) if m else None
                if path is None:
                    return self._fail(HTTPStatus.NOT_FOUND, "not found")
                return self._send(200, Path(path).read_bytes(), "image/png", cache="private, max-age=3600")
            except RequestError as e:
                return self._fail(e.status, str(e))

        def do_POST(self):  # noqa: N802
            if not self._host_ok():
                return
            port = self.server.server_address[1]
            origin = self.headers.get("Origin")
            if origin is not None and origin not in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
                return self._fail(HTTPStatus.FORBIDDEN, "answers are accepted from this page only")
            if urlsplit(self.path).path != "/answer":
                return self._fail(HTTPStatus.NOT_FOUND, "not found")
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._fail(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            if ctype != "application/x-www-form-urlencoded" or not 0 < length <= MAX_BODY:
                return self._fail(HTTPStatus.BAD_REQUEST, "expected a small form post")
            try:
                form = parse_qs(self.rfile.read(length).decode("utf-8"), max_num_fields=8, strict_parsing=True)
                fields = {k: v[0] for k, v in form.items() if len(v) == 1}
                rater = self._rater(fields.get("rater", ""))
                study.record(rater, fields.get("trial", ""), fields.get("choice", ""))
            except (UnicodeDecodeError, ValueError):
                return self._fail(HTTPStatus.BAD_REQUEST, "malformed form")
            except RequestError as e:
                return self._fail(e.status, str(e))
            return self._redirect(f"/trial?rater={quote(rater)}")

    return Handler


def make_server(study_dir: str | Path, port: int = 0, rater: str | None = None) -> tuple[ThreadingHTTPServer, LabStudy]:
    """A server for ``study_dir`` on 127.0.0.1:``port`` (0 = a free port); call ``serve_forever()``."""
    study = LabStudy(study_dir)
    if rater is not None:
        try:
            rater = check_rater(rater)
        except RequestError as e:
            from splice.core.errors import ConfigError

            raise ConfigError(f"--rater {rater!r}: {e}") from None
    server = ThreadingHTTPServer((HOST, port), make_handler(study, rater))
    server.daemon_threads = True
    return server, study
