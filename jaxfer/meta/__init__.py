"""The meta-gradient engines: pure functions with no loop or config knowledge.

* `unroll`: the shared machinery, K / T real optax updates of an inner
  network (`Inner`, `train_step`, `unroll`: Python or `lax.scan`, with
  `jax.checkpoint` per segment).
* `mpl`: Meta Pseudo Labels feedback, four ways (`first_order`,
  `score_function`, `exact`, `exact_jvp`): the math of Meta-Face2Exp.
* `distillation`: dataset distillation's `unroll` and `krr` objectives, the
  state of a distillation and its outer step.
* `augment`: differentiable on-device augmentation (DSA).

Nothing here imports `jaxfer.methods`: the methods build these from a
config for the training loop (`jaxfer/methods/face2exp.py`,
`jaxfer/methods/distill.py`).
"""
