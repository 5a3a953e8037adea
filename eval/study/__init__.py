"""The 2AFC user study of the Splice paper (Tumanyan et al., CVPR 2022, Table 1).

PROTOCOL.md, "2AFC user study": raters see image A (the structure image, in grayscale),
image B (the appearance image) and two alternatives, our output and one baseline's, and
answer "Which image best shows the shape/structure of image A combined with the
appearance/style of image B?".

- :mod:`eval.study.design`   trials, balanced left/right order, vigilance trials, HITs (pure); each
  comparison in one HIT, published with k assignments (k different raters)
- :mod:`eval.study.images`   aligned, same-size, metadata-free images
- :mod:`eval.study.export`   ``splice study export``: batch CSV, HIT template, images, answer key
- :mod:`eval.study.results`  the results CSV (Mechanical Turk's format, also written by the lab page)
  and its conversion, with the answer key, into the long table of votes
- :mod:`eval.study.votes`    the long table of votes (``--votes``, ``--export-votes``)
- :mod:`eval.study.analyze`  ``splice study analyze``: vigilance, repeats, Table 1, outputs
- :mod:`eval.study.stats`    the clustered headline share, Wilson, binomial, Holm, agreement
- :mod:`eval.study.ranking`  Bradley-Terry ranking with intervals
- :mod:`eval.study.simulate` simulated studies: the checks of the statistics, ``splice study power``
- :mod:`eval.study.lab`, :mod:`eval.study.server`  ``splice study serve``: the lab page
- :mod:`eval.study.csvsafe`  CSV cells guarded against formula injection

Why the headline statistics are what they are, with the simulations: docs/study.md.
"""

from .question import QUESTION  # noqa: F401
