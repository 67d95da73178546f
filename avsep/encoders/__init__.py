"""Frozen pretrained encoders whose embeddings are cached before training.

- :mod:`avsep.encoders.clip`: open_clip ViT-B-32 image embeddings (HFRA's visual input, CLIPSep's query);
- :mod:`avsep.encoders.clap`: CLAP (HTSAT, unfused) audio embeddings through transformers'
  ``ClapAudioModelWithProjection`` (HFRA's alignment target).

Offline, ``random`` weights know nothing; small encoders that know the synthetic domain are pre-trained here
(rules/encoders.smk): :mod:`avsep.encoders.pretrain_clip` (an open_clip CLIP of a small config in
``configs/``), :mod:`avsep.encoders.pretrain_clap` (a shrunken transformers ``ClapModel``), sharing
:mod:`avsep.encoders.pretraining` and the captions of :mod:`avsep.encoders.captions`;
:mod:`avsep.encoders.zeroshot` scores any of them (or random ones) by zero-shot classification. Their weights
are labelled ``synth-pretrained(<dataset>, seed=N)@sha256:<12 hex>``.

Both return L2-normalised 512-d float32 embeddings and carry a weights label (:mod:`avsep.core.weights`: a
named tag or hub id, ``file:<name>@sha256:<12 hex>`` / ``dir:<name>@sha256:<12 hex>`` for local weights, or
``random(seed=N)``)
that every cache records. Loading ``random`` or a local path never touches the network.
"""
