r"""DTM semi-supervised FER on FER2013: the 10% class-balanced labeled
subset, the other 90% of Training (labels hidden from training) or LFW as
the unlabeled pool, pseudo-labels kept by a threshold policy.

  # jaxfer's dynamic per-class, per-stage threshold (the default):
  python -m jaxfer.main --config dtm_fer2013 \
      --config.data.path=../shared/data/fer2013/fer2013.csv.bz2 \
      --workdir /tmp/jaxfer/dtm
  # the other policies: fixed (FixMatch) | flexmatch | freematch | softmatch
  python -m jaxfer.main --config dtm_fer2013 \
      --config.data.path=../shared/data/fer2013/fer2013.csv.bz2 \
      --config.dtm.threshold=fixed --workdir /tmp/jaxfer/fixmatch
  # LFW (13,233 faces of 5,749 people, no expression labels) as the pool:
  python -m jaxfer.main --config dtm_fer2013:lfw \
      --config.data.path=../shared/data/fer2013/fer2013.csv.bz2 \
      --config.data.unlabeled.path=../shared/data/lfw --workdir /tmp/jaxfer/dtm_lfw

The ConvNet-4 and 1,000-step budget of the Meta-Face2Exp table (batch 64
labeled + 64 unlabeled, SGD-Nesterov lr 0.05 cosine, RandAugment(2, 16) of
the Face2Exp pool for the strong views), checkpoints selected by
PublicTest macro-F1, results on PrivateTest. The per-class thresholds,
kept-label histogram and (rest-of-Training pool) precision of the kept
pseudo-labels are in metrics.jsonl, TensorBoard and `thresholds.png`.
Expected (PrivateTest, 3 seeds): `dtm` 49.96 +- 0.61% accuracy, macro-F1
0.447 +- 0.006; `fixed` 49.56 +- 0.19%, 0.447 +- 0.001 (the 10% baseline:
45.81 +- 0.39%); flexmatch, freematch and softmatch fail at this budget
(34-39%, one seed; why: docs, DTM). Wall time 14 min 37 s for `fixed` on
2 idle CPU cores, 14-26 min for the others. `:smoke` is a
seconds-long variant on the 210-row sample.
`:tpu` sizes it for a TPU v2-8 / v3-8
(on paper, never run: `defaults.tpu_sized`). `:vgg` swaps in the shipped
model's VGG (1.17 M parameters), the rest unchanged: its step times are in
the docs (Supervised FER2013, the new bar); no results yet.
"""

from jaxfer.core import defaults
from jaxfer.core import presets


def get_config(arg: str = ""):
  variants = set(arg.split(",")) - {""}
  unknown = variants - {"smoke", "lfw", "tpu", "vgg"}
  if unknown:
    raise ValueError(
      f"unknown variants {sorted(unknown)}; use smoke, lfw, tpu, vgg"
    )
  c = defaults.base()
  c.method = "dtm"
  c.mu = 1
  presets.fer2013(c.data)
  c.data.labeled_fraction = 0.1
  c.data.batch_size = 64
  # `:vgg`: the shipped model's network instead (the rest unchanged).
  c.model = presets.vgg() if "vgg" in variants else presets.convnet4()
  c.total_steps = 1000
  c.optimizer.lr = 0.05
  c.optimizer.warmup_steps = 100
  c.log_every, c.eval_every = 50, 500
  c.checkpoint.every = 500
  c.checkpoint.best_split = "PublicTest"
  c.checkpoint.best_metric = "macro_f1"
  if "lfw" in variants:
    c.data.unlabeled.source = "unlabeled_folder"
    c.data.unlabeled.path = "../shared/data/lfw"
    c.data.unlabeled.center_crop = 0.5
  if "tpu" in variants:  # sized on paper: defaults.tpu_sized
    defaults.tpu_sized(c)
  if "smoke" in variants:
    c.data.path = presets.FER2013_SAMPLE
    c.data.cache_dir = ""
    c.data.labeled_fraction = 0.5
    c.total_steps, c.log_every, c.eval_every = 6, 2, 3
    c.checkpoint.every = 3
    c.data.batch_size, c.data.eval_batch_size = 8, 32
    presets.smoke_sized(c.model)
    c.dtm.tau = 0.3  # a tiny model's confidences pass
    c.dtm.dynamic.tau_min = 0.15
  return c
