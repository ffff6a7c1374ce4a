r"""Supervised FER2013 (Kaggle CSV, 48x48 grey, 7 classes).

  # The recipe of the shipped model (VGG, 1.17 M parameters, 20 epochs):
  python -m jaxfer.main --config supervised_fer2013:vgg \
      --workdir /tmp/jaxfer/vgg
  # ConvNet-4 (0.12 M parameters, 11 epochs), all labels:
  python -m jaxfer.main --config supervised_fer2013 \
      --workdir /tmp/jaxfer/fer2013
  # The Face2Exp 10% class-balanced labeled subset (the SSL baseline):
  python -m jaxfer.main --config supervised_fer2013:10pct \
      --workdir /tmp/jaxfer/fer2013_10pct

Selects checkpoints by PublicTest accuracy and reports PrivateTest.
Expected (PrivateTest, last step): `:vgg` 69.63 +- 0.04% accuracy,
macro-F1 0.673 +- 0.004 (seeds 0 and 1, live weights; seed 1's EMA, 69.69%
/ 0.675, is the shipped model: docs, Supervised FER2013), 1 h 35 min on 2
CPU cores; ConvNet-4 64.70% / 0.594 in 24 min 33 s;
`:10pct` 54.39% / 0.508 in 25 min 15 s; `:vgg,10pct` 54.44% / 0.511 in
1 h 32 min (one seed), and at `--config.total_steps=1000` (the methods'
bar) 54.77 +- 0.31% / 0.500 +- 0.005 over seeds 0-2, 48 min each (two
runs sharing the 2 cores). `:smoke` is a
seconds-long variant on 210 synthetic faces shipped in FER2013's CSV
layout (it runs from any folder, no dataset needed), for tests (with any
other).
"""

from jaxfer.core import defaults
from jaxfer.core import presets
from jaxfer.core import variants

VARIANTS = {
  "smoke": "seconds-long, on the 210 shipped synthetic faces",
  "10pct": "the 10% class-balanced labeled subset, RandAugment on it",
  "vgg": "the shipped model's recipe (VGG, batch 128, 4,500 steps)",
}


def get_config(arg: str = ""):
  v = variants.parse(arg, VARIANTS)
  c = defaults.base()
  presets.fer2013(c.data)
  c.data.batch_size = 64
  # ConvNet-4 (width 64, BatchNorm, 0.12 M params): on 2 CPU cores it
  # trains 11 epochs in under 30 minutes. A short probe favoured it over a
  # one-block-per-stage ResNet of the same speed; on a GPU use ResNet-18.
  c.model = presets.convnet4()
  c.optimizer.lr = 0.05
  c.optimizer.warmup_steps = 200
  presets.schedule(c, 5000, log=100, every=1250, best="PublicTest")
  if "vgg" in v:
    c.model = presets.vgg()
    c.data.batch_size = 128
    c.optimizer.lr = 0.1
    c.optimizer.warmup_steps = 300
    c.label_smoothing = 0.1
    c.ema_decay = 0.999
    presets.schedule(c, 4500, log=100, every=750)
  if "10pct" in v:
    c.data.labeled_fraction = 0.1
    c.data.strong_augment = True
  if "smoke" in v:
    presets.smoke(c)
    if "10pct" in v:
      c.data.labeled_fraction = 0.5
  return c
