"""The comparison methods of splice-bench, one module each, behind :class:`splice.core.method.Method`.

Every baseline is registered lazily in ``splice.core.registry.METHODS`` (``"name": "baselines.module:Class"``),
so importing this package imports nothing heavy. Modules:

- :mod:`baselines.colour`: ``reinhard`` (Reinhard et al. 2001) and ``histogram`` (per-channel histogram
  specification), instant reference points that need nothing.
- :mod:`baselines.external`: ``external`` and the wrapped official repositories (``swapping-autoencoder``,
  ``cross-image-attention``, ``eye-for-an-eye``), each described by a YAML file in ``baselines/external/``.
- :mod:`baselines.precomputed`: ``precomputed`` imports outputs that already exist (e.g. the Splice authors'
  published ``ours``/``sa``/``strotss`` images) as if they had been run.
- ``strotss``, ``wct2``, ``structural-analogy``, ``sincut``: re-implementations from the papers.

``docs/methods.md`` has the table of methods, what each needs and its seconds per pair.
"""
