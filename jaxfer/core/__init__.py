"""The leaves: config fields, losses, metrics, optimizers, the data-parallel
runners, run reports and XLA CPU settings. They import no other part of
jaxfer."""
