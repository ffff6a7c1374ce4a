"""Every config field, its default and its meaning, in one place.

Config files start from `base()` and change what their experiment needs; the
CLI locks the result, so a mistyped `--config.field` is an error.
"""

import ml_collections


def optimizer(**overrides) -> ml_collections.ConfigDict:
  """An optimizer section (`config.optimizer`, the Meta-Face2Exp student's
  and fine-tune's, the distilled set's evaluation): the one place its
  fields are defined; `jaxfer/core/optim.py` acts on them."""
  c = ml_collections.ConfigDict(
    dict(
      name="sgd",  # sgd | adamw
      lr=0.05,
      momentum=0.9,  # sgd (0: plain SGD)
      nesterov=True,  # sgd
      b1=0.9,
      b2=0.999,  # adamw
      weight_decay=5e-4,  # kernels only (not norms or biases)
      warmup_steps=50,  # linear warm-up from 0
      wait_steps=0,  # lr 0 for this many steps first
      schedule="cosine",  # cosine | constant (after warm-up)
      grad_clip=0.0,  # global-norm clip (0: none)
    )
  )
  c.update(overrides)
  return c


def source(**overrides) -> ml_collections.ConfigDict:
  """The fields every dataset section reads (`config.data`, its
  `unlabeled` pool, `select.pool`, each `cross_eval` entry): which source,
  where, and the source's own options. The one place they are defined;
  `jaxfer/data/sources/__init__.py` acts on them."""
  c = ml_collections.ConfigDict(
    dict(
      # synthetic | fer2013 | rafdb | affectnet | affwild2 | image_folder |
      # labeled_csv | unlabeled_folder | tfds | distilled | mined |
      # msceleb_tsv (jaxfer.data.sources.REGISTRY); pools also "rest".
      source="synthetic",
      path="",  # file or folder of file-based sources
      tfds_name="",  # dataset name for source="tfds"
      class_table="fer2013",  # class names of source="labeled_csv"
      ferplus="",  # FER2013 only: "" | "majority" | "soft" | "soft_train"
      drop_blank=False,  # FER2013 only: drop the 12 blank images
      cache_dir="~/.cache/jaxfer",  # parsed-CSV cache ("" for none)
      on_bad="error",  # bad rows/images: "error" | "skip"
      num_classes=7,
      image_size=48,
      channels=1,
      synthetic=dict(seed=0, sizes=dict(train=6000, test=1400)),
      # Aff-Wild2 (ABAW EXPR): every k-th frame; "annotated" frames (labels
      # 0..7) or "unannotated" ones (label -1, as an unlabeled pool).
      affwild2=dict(every=1, frames="annotated"),
      # Where the MS-Celeb TSV's byte-offset index is cached ("": beside
      # the file).
      msceleb_index="",
    )
  )
  c.update(overrides)
  return c


def pool(**overrides) -> ml_collections.ConfigDict:
  """A face pool's section: a source's fields, its split, and a centre
  crop (keep the central fraction of each image; LFW's loose 250x250
  crops: 0.5). source="rest" is the train split outside the labeled
  subset, labels dropped."""
  c = source(split="train", center_crop=1.0)
  c.update(overrides)
  return c


def cross_eval(**overrides) -> ml_collections.ConfigDict:
  """One `config.data.cross_eval` entry: a source's fields (those not given
  are the labeled set's), its split, and whether rows of classes the model
  lacks are dropped (else an error)."""
  c = ml_collections.ConfigDict(dict(split="test", drop_unmapped=False))
  c.update(overrides)
  return c


def data() -> ml_collections.ConfigDict:
  """The data fields (`config.data`): a source's fields and the stream's."""
  c = source()
  c.update(
    dict(
      train_split="train",
      eval_splits=("test",),
      mean=(0.5,),
      std=(0.25,),
      labeled_fraction=1.0,  # k% labeled subset of the train split
      balanced_split=True,  # equal count per class in that subset
      split_seed=0,
      balanced_sampling=False,  # sample classes uniformly
      batch_size=64,  # global labeled batch
      eval_batch_size=256,
      crop_padding=4,
      flip=True,
      strong_augment=False,  # RandAugment on the labeled stream
      # Distillation: a teacher file of `jaxfer.evaluate --probabilities_out`
      # mixed into the labeled targets at `weight` (`jaxfer.data.teacher`).
      teacher=dict(path="", weight=0.5),
      randaugment=dict(n=2, m=16, pool="face2exp"),
      num_threads=2,  # Grain read threads
      worker_count=0,  # Grain worker processes
      # Evaluations on other datasets, labels mapped by class name: name ->
      # `cross_eval(source=..., path=..., split=..., ...)` (fields not
      # given are this section's), e.g. a FER2013 model on RAF-DB's test
      # split.
      cross_eval={},
      # A distilled set (a method="distill" workdir's `distilled/`) mixed
      # into the labeled training set at this share of draws.
      distilled=dict(path="", ratio=0.0),
      # A mined set (a jaxfer.select workdir's `mined/`) added to the
      # labeled training set: all of it (ratio 0), or at this share of draws.
      mined=dict(path="", ratio=0.0),
      # The unlabeled pool of semi-supervised methods (used when mu > 0).
      unlabeled=pool(
        source="rest", affwild2=dict(every=1, frames="unannotated")
      ),
    )
  )
  return c


def base() -> ml_collections.ConfigDict:
  """The full default config: supervised training on the synthetic faces."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = "supervised"
  c.total_steps = 1000
  c.mu = 0  # unlabeled examples per labeled one
  # Pretrained weights for a fresh run (jaxfer/loop/pretrained.py): a torchvision
  # ResNet state dict (.pth / .safetensors), a Meta-Face2Exp checkpoint or a
  # jaxfer workdir; a head of another class count is re-initialised.
  c.init_from = ""
  c.init_allow_missing_head = False
  c.data = data()
  c.model = dict(
    name="convnet", depth=3, width=32, norm="batch", dtype="float32"
  )
  c.optimizer = optimizer()
  # Meta-Face2Exp (method="face2exp", jaxfer/methods/face2exp.py): the
  # teacher uses `optimizer`, the student `face2exp.student_optimizer`.
  c.face2exp = dict(
    # first_order (the reference) | score_function | exact | exact_jvp
    feedback="exact_jvp",
    label_view="weak",  # teacher view giving the student labels
    pseudo_temperature=1.0,  # soft/sampled labels softmax(z / T)
    meta_weight=1.0,  # weight of the feedback term
    same_bn_batch=False,  # L_new forward on [labeled; strong]
    uda=dict(
      weight=1.0, steps=1, temperature=1.0, threshold=0.95, mask=False
    ),  # Face2Exp: unmasked (rate logged)
    first_order=dict(
      sign="old_minus_new",  # or new_minus_old (MPL HEAD)
      argmax_view="strong",  # view of the teacher argmax
      reduce="mean",
    ),  # or sum
    # feedback="exact" only: how its K student updates unroll.
    exact=dict(
      unroll_steps=1,  # K student updates
      remat=False,  # jax.checkpoint per unroll segment
      segment=1,  # student steps per remat segment
      scan=False,  # lax.scan over segments (else Python)
    ),
    student_optimizer=optimizer(),
    # The student alone on the labeled set after the meta steps (counted
    # in total_steps).
    finetune=optimizer(
      steps=0,
      lr=1e-5,
      momentum=0.0,
      nesterov=False,
      weight_decay=0.0,
      schedule="constant",
      warmup_steps=0,
    ),
  )
  # Dataset distillation (method="distill", jaxfer/methods/distill.py).
  c.distill = dict(
    objective="unroll",  # unroll (exact bilevel) | krr (FRePo)
    images_per_class=1,
    steps_per_epoch=1,  # S groups of images, one per inner step
    epochs=10,  # inner steps T = S * epochs
    init="resample",  # inner network: resample | fixed | pool
    init_images="real",  # real (random per class) | noise
    learn_labels=False,  # learn soft labels too
    lr_init=0.01,  # initial inner learning rates
    inner_momentum=0.0,
    lr_images=0.01,  # outer Adam(0.5, 0.999) learning rates
    lr_lrs=0.001,
    lr_labels=0.01,
    remat=True,  # jax.checkpoint per unroll segment
    segment=1,
    scan=False,  # lax.scan (else Python unroll)
    augment=False,  # DSA: same draw on synthetic and real
    krr_reg=1e-6,  # ridge, times tr(K) / n
    pool_size=8,  # pool of online-trained networks
    pool_max_age=100,  # a member restarts after this many steps
    pool_lr=0.01,
    # How fresh networks are trained on the distilled set to evaluate it:
    # "learned" (the T inner steps) or "train" (optimizer below).
    eval=optimizer(
      mode="train",
      nets=5,
      steps=300,
      batch_size=256,
      lr=0.01,
      nesterov=False,
      warmup_steps=0,
    ),
  )
  # DTM semi-supervised FER (method="dtm", jaxfer/methods/dtm.py): one
  # network, pseudo-labels of the weak views kept by a threshold policy
  # (jaxfer/methods/thresholds.py) train the strong views.
  c.dtm = dict(
    threshold="dtm",  # fixed | flexmatch | freematch |
    # softmatch | dtm
    tau=0.95,  # the fixed / maximum threshold
    teacher="self",  # pseudo-labels from: self | ema
    soft=False,  # soft targets softmax(z_w / T)
    temperature=1.0,
    unlabeled_weight=1.0,  # lambda_u
    # Selective negative learning for faces below their threshold.
    negative=dict(enabled=False, cut=0.05, weight=1.0),
    flexmatch=dict(warmup=True),
    freematch=dict(momentum=0.999, fairness_weight=0.001),
    softmatch=dict(momentum=0.999, n_sigma=2.0),
    # jaxfer's dynamic threshold (formula: jaxfer/methods/thresholds.py).
    dynamic=dict(
      tau_min=0.5, momentum=0.99, gamma=1.0, per_class=True, per_stage=True
    ),
  )
  # Omni-supervised selection (python -m jaxfer.select, jaxfer/loop/mine.py; the
  # rule: jaxfer/mining/rules.py): a primitive model's workdir, a pool.
  c.select = dict(
    model_workdir="",
    model="",
    best=True,
    pool=pool(source="unlabeled_folder"),
    batch_size=256,
    chunk_batches=16,  # a score table per 16 batches
    save_features=True,  # unit features (float16) in the tables
    knn=0,  # k of the k-NN vote (0: none)
    confidence=0.9,  # T(c), or per class:
    confidence_per_class=(),
    confidence_quantile=0.0,  # raise T(c) to this quantile
    agree=True,
    similarity=0.0,
    knn_agree=False,
    knn_share=0.5,
    per_class=0,
    per_identity=0,  # caps (0: none)
    score_weight=0.5,  # w conf + (1 - w) similarity
    sheet_per_class=16,
  )
  c.label_smoothing = 0.0
  c.ema_decay = 0.0  # 0: no EMA of the parameters
  # supervised: Mixup / CutMix within the batch, lam ~ Beta(alpha, alpha);
  # 0 turns one off; both > 0: one of the two at random each step.
  c.mixup = ml_collections.ConfigDict(dict(alpha=0.0, cutmix_alpha=0.0))
  c.log_every = 50
  c.eval_every = 500
  c.confusion_every_eval = False  # PNG at every evaluation, not only last
  # Data parallelism (jaxfer/core/parallel.py): "mesh" (jit over all devices)
  # or "pmap"; multi-host runtime when distributed.enabled or
  # JAXFER_DISTRIBUTED=1 (address etc. empty: detected by JAX).
  c.parallel = dict(mode="mesh")
  c.distributed = dict(
    enabled=False, coordinator_address="", num_processes=1, process_id=0
  )
  c.checkpoint = dict(
    every=500, keep=2, best_split="test", best_metric="accuracy"
  )
  return c


def from_json(saved: dict) -> ml_collections.ConfigDict:
  """A config saved as JSON (a workdir's `config.json`, a checkpoint's, a
  shipped model's card) back as a ConfigDict, its lists as the tuples they
  were (JSON has no tuple; ml_collections overrides tuples, not lists,
  from the command line). A field added to jaxfer after the config was
  saved takes its default from `base()` (new features default to off, so
  the saved run means what it meant); `model` is left as saved, since
  configs replace it whole."""

  def tuples(v):
    if isinstance(v, dict):
      return {k: tuples(x) for k, x in v.items()}
    if isinstance(v, list):
      return tuple(tuples(x) for x in v)
    return v

  def fill(saved_part: dict, default: dict) -> dict:
    out = dict(saved_part)
    for k, v in default.items():
      if k not in out:
        out[k] = v
      elif isinstance(v, dict) and isinstance(out[k], dict) and k != "model":
        out[k] = fill(out[k], v)
    return out

  return ml_collections.ConfigDict(fill(tuples(saved), base().to_dict()))


def tpu_sized(c, cores: int = 8):
  """The `:tpu` variant of a config sized for 2 CPU cores: the same model
  and method with the CPU batch on each of `cores` TPU cores (a v2-8 /
  v3-8 runtime), the learning rate and warmup scaled by sqrt(cores) (the
  batch grows cores-fold), and 5x the steps. Sized on paper: not run on a
  TPU by the project (none lent); the notebooks fit the batch to the
  device count they find (`jaxfer.notebook.fit_batch`)."""
  c.data.batch_size *= cores
  c.data.eval_batch_size = max(c.data.eval_batch_size, 128 * cores)
  c.optimizer.lr *= cores**0.5
  c.optimizer.warmup_steps *= 2
  c.total_steps *= 5
  c.eval_every = min(max(c.eval_every, c.total_steps // 5), c.total_steps)
  c.checkpoint.every = c.eval_every
  c.data.num_threads = max(c.data.num_threads, 16)
  if c.method == "face2exp":
    s = c.face2exp.student_optimizer
    s.lr *= cores**0.5
    s.warmup_steps *= 2
  return c
