"""LaTeX text: one escaper for every table the suite writes (metric tables, the study's Table 1)."""

from __future__ import annotations

#: each character LaTeX treats specially, as text (one pass per character: a backslash's own braces are not
#: escaped again, as a chain of ``str.replace`` would do)
TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
       "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
       "±": r"$\pm$"}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` as LaTeX prints it literally."""
    return "".join(TEX.get(ch, ch) for ch in str(text))
